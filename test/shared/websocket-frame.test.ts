/**
 * Frame heads written in place (the server's chunk messages, the headless terminal's frames) read
 * back by `ws`'s own parser, at every length where RFC 6455 changes the head's form.
 */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { test } from 'node:test';
import * as ws from 'ws';
import { chunkFrameBytes, chunkMessageBytes, writeChunkMessage } from '../../server/content/chunk-cipher.ts';
import { cryptoReady, decryptChunk, newContentKey } from '../../shared/crypto.ts';
import { decodeChunkFrame } from '../../shared/protocol.ts';
import { frameHeadBytes, writeFrameHead } from '../../shared/websocket-frame.ts';

// ws's own frame parser: exported by the package, not declared by @types/ws.
const { Receiver } = ws as unknown as {
  Receiver: new (opts: {
    isServer: boolean;
    maxPayload: number;
    skipUTF8Validation: boolean;
  }) => EventEmitter & { write(chunk: Buffer): void };
};

/** Every message `ws` parses out of `bytes`, as a server (masked frames) or a client (unmasked). */
function parse(bytes: Buffer, isServer: boolean): Buffer[] {
  const got: Buffer[] = [];
  const errors: Error[] = [];
  const r = new Receiver({ isServer, maxPayload: 0, skipUTF8Validation: true });
  r.on('message', (data: Buffer) => got.push(Buffer.from(data)));
  r.on('error', (e: Error) => errors.push(e));
  r.write(bytes);
  assert.deepEqual(errors, [], 'ws finds nothing wrong with the frames');
  return got;
}

const lengths = [0, 1, 125, 126, 127, 65535, 65536, 65537, 70_000];

test('unmasked heads (server to terminal) at every length boundary parse in ws, back to back', () => {
  const payloads = lengths.map((n) => Buffer.alloc(n, n % 251));
  const total = payloads.reduce((s, p) => s + frameHeadBytes(p.length, false) + p.length, 0);
  const out = Buffer.alloc(total);
  let at = 0;
  for (const p of payloads) {
    at += writeFrameHead(out, at, 2, p.length, false);
    p.copy(out, at);
    at += p.length;
  }
  assert.equal(at, total);
  assert.deepEqual(parse(out, false), payloads);
  assert.deepEqual(
    lengths.map((n) => frameHeadBytes(n, false)),
    [2, 2, 2, 4, 4, 4, 10, 10, 10],
  );
});

test('masked heads (terminal to server) parse in ws once the payload is masked with the key after them', () => {
  for (const n of lengths) {
    const payload = Buffer.alloc(n, 7);
    const out = Buffer.alloc(frameHeadBytes(n, true) + n);
    const head = writeFrameHead(out, 0, 2, n, true);
    const key = [1, 2, 3, 4];
    out.set(key, head - 4);
    for (let i = 0; i < n; i++) out[head + i] = (payload[i] as number) ^ (key[i & 3] as number);
    assert.deepEqual(parse(out, true), [payload], `length ${n}`);
  }
});

test('a block of chunk messages written in place: each is one ws message holding a chunk that decrypts', async () => {
  await cryptoReady();
  const key = newContentKey();
  const orderId = crypto.randomUUID();
  // Two full chunks and a short last one, as the end of a title's last block.
  const plains = [Buffer.alloc(65536, 1), Buffer.alloc(65536, 2), Buffer.alloc(1000, 3)];
  const block = Buffer.alloc(plains.reduce((s, p) => s + chunkMessageBytes(p.length), 0));
  let at = 0;
  plains.forEach((p, i) => {
    at += writeChunkMessage(block, at, key, p, orderId, i, plains.length);
  });
  assert.equal(at, block.length);
  const messages = parse(block, false);
  assert.equal(messages.length, 3);
  messages.forEach((m, i) => {
    assert.equal(m.length, chunkFrameBytes((plains[i] as Buffer).length));
    const f = decodeChunkFrame(m);
    assert.ok(f);
    assert.equal(f.index, i);
    assert.deepEqual(Buffer.from(decryptChunk(key, f.cipher, orderId, i, 3) ?? []), plains[i]);
  });
});
