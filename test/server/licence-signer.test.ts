/** Licences sealed and signed on the worker thread are the ones the event loop would issue, each for its own order. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LicenceSigner } from '../../server/licence-signer.ts';
import { nativeContentKey, nativeIssueLicence } from '../../server/native-sodium.ts';
import { cryptoReady, fromB64, generateIdentity, terminalIdFromPublicKey } from '../../shared/crypto.ts';
import { unsealContentKey, verifyLicence } from '../../shared/licence.ts';

const fieldsFor = (k: number) => ({
  orderId: crypto.randomUUID(),
  itemNumber: 100 + k,
  notBefore: 1000 + k,
  notAfter: 2000 + k,
  issuedAt: 1000,
  size: 5 + k,
  chunkSize: 65536,
  totalChunks: 1,
});

test('licences from the worker verify, unseal to their own key and carry the event loop’s fields', async () => {
  await cryptoReady();
  const server = generateIdentity();
  const terminals = [generateIdentity(), generateIdentity()];
  const signer = new LicenceSigner(server.signSecretKey);
  try {
    // Many in one turn go over as one batch; each must come back to its own caller.
    const asked = Array.from({ length: 40 }, (_, k) => {
      const terminal = terminals[k % 2] as (typeof terminals)[number];
      return { fields: fieldsFor(k), key: nativeContentKey(), terminal };
    });
    const issued = await Promise.all(
      asked.map((a) => signer.issue(a.fields, a.key, a.terminal.signPublicKey)),
    );
    for (const [k, env] of issued.entries()) {
      const a = asked[k] as (typeof asked)[number];
      const terminalId = terminalIdFromPublicKey(a.terminal.signPublicKey);
      const licence = verifyLicence(env, server.signPublicKey, terminalId);
      assert.deepEqual(unsealContentKey(licence, a.terminal), new Uint8Array(a.key));
      // The same fields, in the same order, as the event loop's licence (only the seal is random).
      const here = JSON.parse(
        Buffer.from(
          nativeIssueLicence(server.signSecretKey, a.fields, a.key, a.terminal.signPublicKey).data,
          'base64url',
        ).toString(),
      );
      const there = JSON.parse(Buffer.from(fromB64(env.data)).toString());
      assert.deepEqual(Object.keys(there), Object.keys(here));
      assert.deepEqual({ ...there, sealedKey: '' }, { ...here, sealedKey: '' });
    }
    // Another terminal cannot open it.
    const other = asked[1] as (typeof asked)[number];
    const licence0 = verifyLicence(
      issued[0] as (typeof issued)[number],
      server.signPublicKey,
      terminalIdFromPublicKey((asked[0] as (typeof asked)[number]).terminal.signPublicKey),
    );
    assert.throws(() => unsealContentKey(licence0, other.terminal));
  } finally {
    await signer.close();
  }
});

// A licence the fallback forgot never resolves: the test is then cancelled (checked by removing the
// fallback), and the bound makes it a failure even if something else kept the process alive.
test('licences asked for when the worker dies, or after close, are issued on the event loop', {
  timeout: 30_000,
}, async () => {
  await cryptoReady();
  const server = generateIdentity();
  const terminal = generateIdentity();
  const terminalId = terminalIdFromPublicKey(terminal.signPublicKey);
  const signer = new LicenceSigner(server.signSecretKey);
  const first = await signer.issue(fieldsFor(0), nativeContentKey(), terminal.signPublicKey);
  verifyLicence(first, server.signPublicKey, terminalId);
  // The worker stops with licences waiting on it (as a crash would).
  const keys = Array.from({ length: 5 }, () => nativeContentKey());
  const pending = keys.map((key, k) => signer.issue(fieldsFor(k), key, terminal.signPublicKey));
  await (signer as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
  const late = await Promise.all(pending);
  for (const [k, env] of late.entries())
    assert.deepEqual(
      unsealContentKey(verifyLicence(env, server.signPublicKey, terminalId), terminal),
      new Uint8Array(keys[k] as Uint8Array),
    );
  await signer.close();
  const key = nativeContentKey();
  const after = await signer.issue(fieldsFor(9), key, terminal.signPublicKey);
  assert.deepEqual(
    unsealContentKey(verifyLicence(after, server.signPublicKey, terminalId), terminal),
    new Uint8Array(key),
  );
});
