import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { encryptChunkFrame, FramePool, usingNativeCrypto } from '../../server/content/chunk-cipher.ts';
import { cryptoReady, decryptChunk, encryptChunk, newContentKey } from '../../shared/crypto.ts';
import { decodeChunkFrame } from '../../shared/protocol.ts';

before(async () => {
  await cryptoReady();
});

test('sodium-native chunk frames decrypt with libsodium-wrappers, tags and all', () => {
  assert.equal(usingNativeCrypto(), true, 'sodium-native loads on this machine');
  const key = newContentKey();
  const orderId = crypto.randomUUID();
  const plains = [new Uint8Array(65536).fill(7), new Uint8Array(65536).fill(8), new Uint8Array(123).fill(9)];
  plains.forEach((plain, i) => {
    const f = decodeChunkFrame(encryptChunkFrame(key, plain, orderId, i, plains.length));
    assert.ok(f);
    assert.equal(f.index, i);
    assert.equal(f.orderId, orderId);
    assert.deepEqual(decryptChunk(key, f.cipher, orderId, i, plains.length), plain);
    // The final tag is where the format says: a middle chunk claimed as last fails.
    assert.equal(decryptChunk(key, f.cipher, orderId, i, i + 1 === plains.length ? i + 2 : i + 1), undefined);
  });
});

test('both implementations produce the same layout: same length, same header position', () => {
  const key = newContentKey();
  const orderId = crypto.randomUUID();
  const plain = new Uint8Array(1000).fill(1);
  const wasm = encryptChunk(key, plain, orderId, 0, 1);
  const nat = decodeChunkFrame(encryptChunkFrame(key, plain, orderId, 0, 1));
  assert.equal(nat?.cipher.length, wasm.length);
  assert.deepEqual(decryptChunk(key, wasm, orderId, 0, 1), plain);
});

test('the frame pool hands out only full-size frames it got back, and keeps a bounded number', () => {
  const pool = new FramePool(100, 2);
  const a = pool.take(100);
  const short = pool.take(40);
  assert.equal(short.length, 40, 'a last, shorter chunk gets a buffer of its own');
  pool.give(short);
  assert.equal(pool.idle, 0, 'and it is not kept');
  pool.give(a);
  assert.equal(pool.take(100), a, 'a returned frame is used again');
  for (const f of [pool.take(100), pool.take(100), pool.take(100)]) pool.give(f);
  assert.equal(pool.idle, 2, 'at most max idle frames');
});

test('every chunk gets a header of its own, across header draws and interleaved orders', () => {
  // The server draws chunk headers 512 at a time and caches the last order's frame head: 1,200
  // chunks of two orders in turns of eight cross two draws and change order 150 times.
  const key = newContentKey();
  const orders = [crypto.randomUUID(), crypto.randomUUID()];
  const plain = new Uint8Array(100).fill(3);
  const seen = new Set<string>();
  for (let n = 0; n < 1200; n++) {
    const orderId = orders[Math.floor(n / 8) % 2] as string;
    const index = n % 600;
    const f = decodeChunkFrame(encryptChunkFrame(key, plain, orderId, index, 600));
    assert.ok(f);
    assert.equal(f.orderId, orderId);
    assert.equal(f.index, index);
    seen.add(Buffer.from(f.cipher.subarray(0, 24)).toString('hex'));
    assert.deepEqual(decryptChunk(key, f.cipher, orderId, index, 600), plain);
  }
  assert.equal(seen.size, 1200, 'no header repeats');
});
