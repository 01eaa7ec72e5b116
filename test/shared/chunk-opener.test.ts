/** The player's chunk opener decrypts exactly as decryptChunk does, refuses what it refuses, and holds no memory per chunk. */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  ChunkOpener,
  cipherChunkLength,
  cryptoReady,
  decryptChunk,
  encryptChunk,
  newContentKey,
  type Sodium,
} from '../../shared/crypto.ts';

let sodium: Sodium;
before(async () => {
  sodium = await cryptoReady();
});

const CHUNK = 64 * 1024;

test('it opens what encryptChunk made, as decryptChunk does, and refuses what decryptChunk refuses', () => {
  const key = newContentKey();
  const orderId = crypto.randomUUID();
  const total = 4;
  const plains = [0, 1, 2, 3].map((i) => sodium.randombytes_buf(i === total - 1 ? 777 : CHUNK));
  const ciphers = plains.map((p, i) => encryptChunk(key, p, orderId, i, total));
  const opener = new ChunkOpener(key, cipherChunkLength(CHUNK));
  try {
    ciphers.forEach((c, i) => {
      const opened = opener.open(c, orderId, i, total);
      assert.deepEqual(opened, plains[i]);
      assert.deepEqual(opened, decryptChunk(key, c, orderId, i, total));
    });
    const c1 = ciphers[1] as Uint8Array;
    const tampered = new Uint8Array(c1);
    tampered[100] = (tampered[100] as number) ^ 1;
    const cases: [string, Uint8Array, string, number, number][] = [
      ['a flipped bit', tampered, orderId, 1, total],
      ['the wrong place', c1, orderId, 2, total],
      ['another order', c1, crypto.randomUUID(), 1, total],
      ['a middle chunk claimed as the last', c1, orderId, 1, 2],
      ['the last chunk claimed as a middle one', ciphers[3] as Uint8Array, orderId, 3, 5],
      ['too short', c1.subarray(0, 30), orderId, 1, total],
      ['longer than a chunk', new Uint8Array(cipherChunkLength(CHUNK) + 1), orderId, 1, total],
    ];
    for (const [what, data, order, index, count] of cases) {
      assert.equal(opener.open(data, order, index, count), undefined, what);
      assert.equal(decryptChunk(key, data, order, index, count), undefined, `decryptChunk too: ${what}`);
    }
    // A refusal leaves it working.
    assert.deepEqual(opener.open(c1, orderId, 1, total), plains[1]);
    // Into a buffer of the caller's: the same bytes, in that buffer; one too short gets a copy.
    const into = new Uint8Array(CHUNK);
    const last = opener.open(ciphers[3] as Uint8Array, orderId, 3, total, into);
    assert.deepEqual(last, plains[3]);
    assert.equal(last?.buffer, into.buffer);
    const short = opener.open(c1, orderId, 1, total, new Uint8Array(10));
    assert.deepEqual(short, plains[1]);
    assert.notEqual(short?.buffer, into.buffer);
    // Another key opens nothing.
    const other = new ChunkOpener(newContentKey(), cipherChunkLength(CHUNK));
    assert.equal(other.open(c1, orderId, 1, total), undefined);
    other.close();
  } finally {
    opener.close();
  }
  assert.throws(() => opener.open(ciphers[0] as Uint8Array, orderId, 0, total), /closed/);
});

test('opening chunks takes no memory per chunk (libsodium-wrappers’ own pull state is never freed)', () => {
  const raw = (sodium as unknown as { libsodium: { _malloc(n: number): number; _free(at: number): void } })
    .libsodium;
  // Where libsodium's allocator puts a small block now, and again after many chunks: the same place
  // unless something was left allocated in between.
  const probe = () => {
    const at = raw._malloc(64);
    raw._free(at);
    return at;
  };
  const key = newContentKey();
  const orderId = crypto.randomUUID();
  const chunk = encryptChunk(key, new Uint8Array(1000), orderId, 0, 1);
  const opener = new ChunkOpener(key, cipherChunkLength(CHUNK));
  const before = probe();
  for (let i = 0; i < 2000; i++) assert.ok(opener.open(chunk, orderId, 0, 1));
  assert.equal(probe(), before, 'nothing left allocated by 2,000 chunks');
  opener.close();
});
