/** The server's sodium-native paths write the same bytes as shared/crypto.ts, and each reads the other's. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  loadNative,
  nativeContentKey,
  nativeIssueLicence,
  nativeSecretboxOpen,
  nativeSecretboxSeal,
  nativeSignJson,
} from '../../server/native-sodium.ts';
import {
  cryptoReady,
  generateIdentity,
  randomBytes,
  secretboxOpen,
  secretboxSeal,
  signJson,
  terminalIdFromPublicKey,
} from '../../shared/crypto.ts';
import { unsealContentKey, verifyLicence } from '../../shared/licence.ts';

test('native licences, signatures and wrapped keys interoperate with the shared WASM code', async () => {
  await cryptoReady();
  assert.ok(loadNative(), 'sodium-native loads on this machine');
  const server = generateIdentity();
  const terminal = generateIdentity();
  const contentKey = nativeContentKey();
  assert.equal(contentKey.length, 32);
  const fields = {
    orderId: crypto.randomUUID(),
    itemNumber: 101,
    notBefore: 1000,
    notAfter: 2000,
    issuedAt: 1000,
    size: 5,
    chunkSize: 65536,
    totalChunks: 1,
  };
  const env = nativeIssueLicence(server.signSecretKey, fields, contentKey, terminal.signPublicKey);
  const licence = verifyLicence(env, server.signPublicKey, terminalIdFromPublicKey(terminal.signPublicKey));
  assert.equal(licence.orderId, fields.orderId);
  assert.deepEqual(unsealContentKey(licence, terminal), new Uint8Array(contentKey));
  // The terminal's converted keys are remembered: a second licence for it, and one for another
  // terminal, are each sealed and addressed to their own terminal.
  const issueTo = (t: typeof terminal) => {
    const envelope = nativeIssueLicence(server.signSecretKey, fields, contentKey, t.signPublicKey);
    const opened = verifyLicence(envelope, server.signPublicKey, terminalIdFromPublicKey(t.signPublicKey));
    assert.deepEqual(unsealContentKey(opened, t), new Uint8Array(contentKey));
    return { envelope, opened };
  };
  issueTo(terminal);
  const other = generateIdentity();
  const { envelope: toOther, opened: otherLicence } = issueTo(other);
  assert.throws(() =>
    verifyLicence(toOther, server.signPublicKey, terminalIdFromPublicKey(terminal.signPublicKey)),
  );
  assert.throws(() => unsealContentKey(otherLicence, terminal));
  // Ed25519 is deterministic: the very same envelope as the WASM signer.
  assert.deepEqual(
    nativeSignJson('licence', licence, server.signSecretKey),
    signJson('licence', licence, server.signSecretKey),
  );
  // Wrapped keys open both ways; a wrong key is refused.
  const storageKey = randomBytes(32);
  assert.deepEqual(
    secretboxOpen(nativeSecretboxSeal(contentKey, storageKey), storageKey),
    new Uint8Array(contentKey),
  );
  assert.deepEqual(
    new Uint8Array(nativeSecretboxOpen(secretboxSeal(contentKey, storageKey), storageKey)),
    new Uint8Array(contentKey),
  );
  assert.throws(() => nativeSecretboxOpen(nativeSecretboxSeal(contentKey, storageKey), randomBytes(32)));
  // A wrapped key is kept with its order for long: it must not hold a slab of Node's Buffer pool.
  const wrapped = nativeSecretboxSeal(contentKey, storageKey);
  assert.equal(wrapped.buffer.byteLength, wrapped.length, 'the wrapped key has memory of its own');
});
