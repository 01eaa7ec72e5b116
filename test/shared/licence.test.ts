import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  chunkCount,
  cryptoReady,
  decryptChunk,
  encryptChunk,
  fromB64,
  generateIdentity,
  newContentKey,
  plainChunkLength,
  terminalIdFromPublicKey,
  toB64,
} from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { issueLicence, unsealContentKey, verifyLicence } from '../../shared/licence.ts';

before(async () => {
  await cryptoReady();
});

const fields = () => ({
  orderId: crypto.randomUUID(),
  itemNumber: 7,
  notBefore: 1_000,
  notAfter: 2_000,
  issuedAt: 1_000,
  size: 10,
  chunkSize: 4,
  totalChunks: 3,
});

test('a licence verifies for its terminal and unseals the content key', () => {
  const server = generateIdentity();
  const term = generateIdentity();
  const key = newContentKey();
  const env = issueLicence(server.signSecretKey, fields(), key, term.signPublicKey);
  const lic = verifyLicence(env, server.signPublicKey, terminalIdFromPublicKey(term.signPublicKey));
  assert.equal(lic.itemNumber, 7);
  assert.deepEqual(unsealContentKey(lic, term), key);
});

test('a tampered, foreign-signed or misaddressed licence is rejected', () => {
  const server = generateIdentity();
  const term = generateIdentity();
  const other = generateIdentity();
  const env = issueLicence(server.signSecretKey, fields(), newContentKey(), term.signPublicKey);
  const tid = terminalIdFromPublicKey(term.signPublicKey);
  const json = JSON.parse(new TextDecoder().decode(fromB64(env.data)));
  json.notAfter = 9_999_999;
  const tampered = { ...env, data: toB64(new TextEncoder().encode(JSON.stringify(json))) };
  assert.throws(() => verifyLicence(tampered, server.signPublicKey, tid), RentalError);
  assert.throws(() => verifyLicence(env, other.signPublicKey, tid), RentalError);
  assert.throws(
    () => verifyLicence(env, server.signPublicKey, terminalIdFromPublicKey(other.signPublicKey)),
    RentalError,
  );
  // The right licence on the wrong terminal cannot open the key either.
  const lic = verifyLicence(env, server.signPublicKey, tid);
  assert.throws(() => unsealContentKey(lic, other), RentalError);
});

test('chunks decrypt only in place: tamper, reorder, splice and truncation all fail', () => {
  const key = newContentKey();
  const orderId = crypto.randomUUID();
  const size = 10;
  const total = chunkCount(size, 4);
  assert.equal(total, 3);
  assert.equal(plainChunkLength(size, 4, 2), 2);
  const plain = new Uint8Array(size).map((_, i) => i);
  const chunks = Array.from({ length: total }, (_, i) =>
    encryptChunk(key, plain.subarray(i * 4, i * 4 + plainChunkLength(size, 4, i)), orderId, i, total),
  );
  const out = chunks.map((c, i) => decryptChunk(key, c, orderId, i, total));
  assert.deepEqual(Buffer.concat(out as Uint8Array[]), Buffer.from(plain));

  const flipped = chunks[1]?.slice() as Uint8Array;
  flipped[30] = (flipped[30] as number) ^ 1;
  assert.equal(decryptChunk(key, flipped, orderId, 1, total), undefined, 'tampered');
  assert.equal(decryptChunk(key, chunks[0] as Uint8Array, orderId, 1, total), undefined, 'reordered');
  assert.equal(
    decryptChunk(key, chunks[0] as Uint8Array, crypto.randomUUID(), 0, total),
    undefined,
    'other order',
  );
  assert.equal(decryptChunk(key, chunks[1] as Uint8Array, orderId, 1, 2), undefined, 'truncated stream');
  assert.equal(
    decryptChunk(newContentKey(), chunks[0] as Uint8Array, orderId, 0, total),
    undefined,
    'wrong key',
  );
});
