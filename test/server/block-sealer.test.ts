/**
 * Blocks read and sealed on a sealing thread are the ones the event loop would seal, and a delivery
 * goes on, byte for byte, when the threads stop under it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BlockSealer, blockSealer, SealerGone } from '../../server/content/block-sealer.ts';
import {
  chunkFrameBytes,
  chunkMessageBytes,
  layoutBlock,
  sealChunks,
} from '../../server/content/chunk-cipher.ts';
import { cryptoReady, decryptChunk, newContentKey } from '../../shared/crypto.ts';
import { decodeChunkFrame } from '../../shared/protocol.ts';
import { frameHeadBytes } from '../../shared/websocket-frame.ts';
import { cleanup, collect, linkedPair, rentNow, tempDir, testServer } from '../harness.ts';

const CHUNK = 64 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

before(async () => {
  await cryptoReady();
});
after(cleanup);

/** `count` chunks of a title of `total`, from chunk `first`, laid out in a buffer handed over whole. */
function laidOut(orderId: string, first: number, count: number, total: number) {
  const out = Buffer.allocUnsafeSlow(count * chunkMessageBytes(CHUNK));
  const { fields, ads, bytes } = layoutBlock(out, CHUNK, orderId, first, count, total);
  assert.equal(bytes, out.length);
  return { out, fields, ads };
}

test('a block sealed on a thread has the bytes sealChunks gives here, and each chunk decrypts to the file', async () => {
  const sealer = new BlockSealer(2);
  const file = join(tempDir(), 'title.bin');
  const title = randomBytes(24 * CHUNK);
  writeFileSync(file, title);
  const fd = openSync(file, 'r');
  try {
    const key = newContentKey();
    const orderId = crypto.randomUUID();
    const total = 24;
    // The last of three blocks holds the title's final chunk (its tag must say so).
    for (const first of [0, 8, 16]) {
      const { out, fields, ads } = laidOut(orderId, first, 8, total);
      const here = Buffer.from(out);
      sealChunks(key, title.subarray(first * CHUNK, (first + 8) * CHUNK), here, fields, ads);
      const sealed = await sealer.seal({
        fd,
        position: first * CHUNK,
        plainBytes: 8 * CHUNK,
        out,
        fields,
        ads,
        key,
      });
      assert.equal(out.length, 0, 'the buffer was handed over, not copied');
      assert.equal(sha(sealed), sha(here), `block from chunk ${first}: same bytes on the thread and here`);
      const head = frameHeadBytes(chunkFrameBytes(CHUNK), false);
      for (let k = 0; k < 8; k++) {
        const message = sealed.subarray(k * chunkMessageBytes(CHUNK), (k + 1) * chunkMessageBytes(CHUNK));
        const frame = decodeChunkFrame(message.subarray(head));
        assert.ok(frame);
        assert.equal(frame.index, first + k);
        const plain = decryptChunk(key, frame.cipher, orderId, first + k, total);
        assert.ok(plain, `chunk ${first + k} decrypts`);
        assert.equal(sha(plain), sha(title.subarray((first + k) * CHUNK, (first + k + 1) * CHUNK)));
      }
    }
    assert.equal(sealer.sealed, 3);
    // A block past the file's end is an error for that block only; the thread goes on.
    const beyond = laidOut(orderId, 24, 8, 32);
    await assert.rejects(
      sealer.seal({ fd, position: 24 * CHUNK, plainBytes: 8 * CHUNK, key, ...beyond }),
      /shorter than catalogued/,
    );
    // So is a file cut in the middle of a block.
    const cut = join(tempDir(), 'cut.bin');
    writeFileSync(cut, title.subarray(0, 20 * CHUNK + 100));
    const cutFd = openSync(cut, 'r');
    try {
      await assert.rejects(
        sealer.seal({
          fd: cutFd,
          position: 16 * CHUNK,
          plainBytes: 8 * CHUNK,
          key,
          ...laidOut(orderId, 16, 8, total),
        }),
        /shorter than catalogued/,
      );
    } finally {
      closeSync(cutFd);
    }
    assert.equal(sealer.available, true);
    const again = laidOut(orderId, 0, 8, total);
    await sealer.seal({ fd, position: 0, plainBytes: 8 * CHUNK, key, ...again });
    assert.equal(sealer.sealed, 4);
  } finally {
    closeSync(fd);
    await sealer.close();
  }
});

test('jobs on a thread that dies reject as SealerGone, and later blocks are left to the event loop', async () => {
  const sealer = new BlockSealer(1);
  const file = join(tempDir(), 'title.bin');
  writeFileSync(file, randomBytes(8 * CHUNK));
  const fd = openSync(file, 'r');
  try {
    const key = newContentKey();
    const job = () => ({
      fd,
      position: 0,
      plainBytes: 8 * CHUNK,
      key,
      ...laidOut(crypto.randomUUID(), 0, 8, 8),
    });
    const waiting = [sealer.seal(job()), sealer.seal(job()), sealer.seal(job())];
    await (
      sealer as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
    ).slots[0]?.worker.terminate();
    const results = await Promise.allSettled(waiting);
    // Any that finished before the thread stopped are whole; the rest are SealerGone.
    for (const r of results)
      if (r.status === 'rejected') assert.ok(r.reason instanceof SealerGone, String(r.reason));
    assert.ok(
      results.some((r) => r.status === 'rejected'),
      'at least one job was on the thread when it died',
    );
    assert.equal(sealer.available, false);
    await assert.rejects(sealer.seal(job()), SealerGone);
  } finally {
    closeSync(fd);
    await sealer.close();
  }
});

test('a delivery whose sealing thread dies mid-way goes on, sealed on the event loop, byte for byte', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  // 5 MiB: ten full blocks of eight chunks, which go to the sealing thread.
  const bytes = randomBytes(5 * 1024 * 1024);
  bytes.writeUInt32BE(0x1a45dfa3, 0); // delivery never looks further
  const file = join(tempDir('rd-media-'), 'random.webm');
  writeFileSync(file, bytes);
  const meta = {
    itemNumber: 901,
    title: 'Random',
    genre: 'Test',
    priceCents: 0,
    durationSeconds: 1,
    codecs: 'vp9',
  };
  await server.media.ingest(file, meta, undefined, false);
  // The thread stops just after the third block was handed to it (as a crash would).
  const seal = blockSealer.seal.bind(blockSealer);
  let calls = 0;
  const sealedBefore = blockSealer.sealed;
  blockSealer.seal = (job) => {
    const p = seal(job);
    if (++calls === 3)
      void (
        blockSealer as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }
      ).slots[0]?.worker.terminate();
    return p;
  };
  const order = await rentNow(c, t.core.terminalId, 901, 60);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  assert.equal(sha(await collect(t.core, order.orderId)), sha(bytes));
  assert.ok(calls >= 3, `blocks went to the sealing thread (${calls})`);
  assert.ok(blockSealer.sealed - sealedBefore < 10, 'some blocks were sealed on the event loop');
  assert.equal(blockSealer.available, false);
});
