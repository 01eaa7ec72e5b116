/**
 * The headless terminal's native checks give the same answers as the WASM ones the browser player
 * uses: good signatures and sealed keys pass, and tampered, foreign or truncated ones fail, both ways.
 */
import assert from 'node:assert/strict';
import { afterEach, before, test } from 'node:test';
import { nativeChecks } from '../../player/headless/native-checks.ts';
import {
  boxPublicKeyOf,
  cryptoReady,
  generateIdentity,
  openSealed,
  randomBytes,
  sealTo,
  setNativeChecks,
  signDetached,
  verifyDetached,
} from '../../shared/crypto.ts';

before(cryptoReady);
afterEach(() => setNativeChecks(undefined));

/** Run `fn` once with WASM and once with the native checks; return both answers. */
function bothWays<T>(fn: () => T): [T, T] {
  setNativeChecks(undefined);
  const wasm = fn();
  const checks = nativeChecks();
  assert.ok(checks, 'sodium-native loads here');
  setNativeChecks(checks);
  const native = fn();
  setNativeChecks(undefined);
  return [wasm, native];
}

test('signatures: the same verdicts natively and in WASM', () => {
  const signer = generateIdentity();
  const other = generateIdentity();
  const data = randomBytes(300);
  const sig = signDetached('licence', data, signer.signSecretKey);
  const tampered = data.slice();
  tampered[7] = (tampered[7] as number) ^ 1;
  const cases: [string, () => boolean, boolean][] = [
    ['good', () => verifyDetached('licence', data, sig, signer.signPublicKey), true],
    ['tampered data', () => verifyDetached('licence', tampered, sig, signer.signPublicKey), false],
    ['another key', () => verifyDetached('licence', data, sig, other.signPublicKey), false],
    ['another purpose', () => verifyDetached('terminal-auth', data, sig, signer.signPublicKey), false],
    [
      'short signature',
      () => verifyDetached('licence', data, sig.subarray(0, 63), signer.signPublicKey),
      false,
    ],
  ];
  for (const [name, check, expected] of cases) assert.deepEqual(bothWays(check), [expected, expected], name);
});

test('sealed boxes: the same content key natively and in WASM; wrong ones refused both ways', () => {
  const terminal = generateIdentity();
  const other = generateIdentity();
  const key = randomBytes(32);
  const sealed = sealTo(key, boxPublicKeyOf(terminal.signPublicKey));
  const [wasm, native] = bothWays(() => openSealed(sealed, terminal));
  assert.deepEqual(wasm, key);
  assert.deepEqual(native, key);
  const flipped = sealed.slice();
  flipped[40] = (flipped[40] as number) ^ 1;
  assert.deepEqual(
    bothWays(() => openSealed(flipped, terminal)),
    [undefined, undefined],
    'tampered',
  );
  assert.deepEqual(
    bothWays(() => openSealed(sealed, other)),
    [undefined, undefined],
    'sealed to another',
  );
  assert.deepEqual(
    bothWays(() => openSealed(sealed.subarray(0, 20), terminal)),
    [undefined, undefined],
    'too short',
  );
});
