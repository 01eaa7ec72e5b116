/**
 * Pushed offers: a new delivery's chunks follow its offer at once, without waiting for the
 * terminal's accept (a round trip sooner, one message fewer each way). Resumes, and terminals that
 * do not say they take pushed offers, still get the offer-and-accept handshake.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { FileStorage } from '../player/headless/file-storage.ts';
import {
  chunkCount,
  cipherChunkLength,
  cryptoReady,
  encryptChunk,
  generateIdentity,
  newContentKey,
  plainChunkLength,
  randomBytes,
} from '../shared/crypto.ts';
import { LIMITS } from '../shared/limits.ts';
import { encodeChunkFrame } from '../shared/protocol.ts';
import {
  cleanup,
  customer,
  defer,
  fakeServer,
  rawTerminal,
  rentNow,
  sleep,
  tempDir,
  terminal,
  testServer,
  until,
} from './harness.ts';

afterEach(cleanup);

/** A raw terminal, saying it takes pushed offers or not, linked to a new customer. */
async function rawLinked(
  server: Awaited<ReturnType<typeof testServer>>,
  pushedOffers: boolean,
  identity?: Parameters<typeof rawTerminal>[1],
) {
  const raw = await rawTerminal(server.wsUrl, identity, pushedOffers ? { pushedOffers } : {});
  defer(() => raw.ws.close());
  const c = await customer(server, `pushed${pushedOffers}${Date.now()}@example.com`);
  await c.request('terminal.link', { code: raw.welcome.pairingCode, name: 'Raw' });
  return { raw, c };
}

test('a new delivery comes with its offer, unasked, to a terminal that takes pushed offers; one that does not is asked first', async () => {
  const server = await testServer();

  const pushed = await rawLinked(server, true);
  const order = await rentNow(pushed.c, pushed.raw.welcome.terminalId, 101);
  const offer = await pushed.raw.next((m) => m.type === 'delivery.offer');
  assert.equal(offer.orderId, order.orderId);
  assert.equal(offer.pushed, true);
  const total = offer.totalChunks as number;
  // Every chunk arrives without an accept from this terminal.
  await until(() => pushed.raw.binary() === total);
  assert.equal(pushed.raw.binary(), total);
  const seen = pushed.raw.seen();
  assert.ok(seen.indexOf('delivery.offer') < seen.indexOf('binary'), 'the offer comes before its chunks');
  // Its progress report completes the delivery on the server.
  pushed.raw.ws.send(JSON.stringify({ type: 'delivery.progress', orderId: order.orderId, have: total }));
  for (let i = 0; i < 100 && (await server.repo.orderById(order.orderId))?.contentState !== 'delivered'; i++)
    await sleep(50);
  assert.equal((await server.repo.orderById(order.orderId))?.contentState, 'delivered');

  const asked = await rawLinked(server, false);
  const second = await rentNow(asked.c, asked.raw.welcome.terminalId, 101);
  const plain = await asked.raw.next((m) => m.type === 'delivery.offer');
  assert.equal(plain.orderId, second.orderId);
  assert.equal(plain.pushed, undefined, 'no pushed offer to a terminal that did not say it takes them');
  // Nothing follows the offer until the terminal accepts it.
  await sleep(300);
  assert.equal(asked.raw.binary(), 0);
  asked.raw.ws.send(JSON.stringify({ type: 'delivery.accept', orderId: second.orderId, from: 0 }));
  await until(() => asked.raw.binary() === (plain.totalChunks as number));
  assert.equal(asked.raw.binary(), plain.totalChunks);
});

test('a delivery started again, once its terminal is back, asks where to start instead of pushing', async () => {
  const server = await testServer();
  const identity = generateIdentity();
  const { raw: first, c } = await rawLinked(server, true, identity);
  const order = await rentNow(c, first.welcome.terminalId, 102);
  const pushed = await first.next((m) => m.type === 'delivery.offer');
  assert.equal(pushed.pushed, true);
  // Gone before reporting anything: what it stored, the server cannot know.
  first.ws.close();
  const back = await rawTerminal(server.wsUrl, identity, { pushedOffers: true });
  defer(() => back.ws.close());
  const again = await back.next((m) => m.type === 'delivery.offer' && m.orderId === order.orderId);
  assert.equal(again.pushed, undefined, 'the second offer waits for the terminal to say where to start');
  await sleep(300);
  assert.equal(back.binary(), 0);
  back.ws.send(JSON.stringify({ type: 'delivery.accept', orderId: order.orderId, from: 1 }));
  await until(() => back.binary() === (again.totalChunks as number) - 1);
  assert.equal(back.binary(), (again.totalChunks as number) - 1, 'from the chunk it asked for');
});

/**
 * A terminal that already holds chunk 0 of an order (its report of it was lost on the way) gets a
 * pushed offer and every chunk: it reports what it holds instead of accepting, keeps its own copy
 * of chunk 0 (the resent one is dropped unwritten), and stores the rest.
 */
test('a pushed offer for chunks the terminal holds already: reported, not written again, the rest stored', async () => {
  await cryptoReady();
  const pinned = generateIdentity();
  const orderId = crypto.randomUUID();
  const chunkSize = LIMITS.chunkSize;
  const size = 2 * chunkSize + 100;
  const total = chunkCount(size, chunkSize);
  const key = newContentKey();
  const plain = randomBytes(size);
  const frames = Array.from({ length: total }, (_, i) =>
    encodeChunkFrame(
      orderId,
      i,
      encryptChunk(
        key,
        plain.subarray(i * chunkSize, i * chunkSize + plainChunkLength(size, chunkSize, i)),
        orderId,
        i,
        total,
      ),
    ),
  );
  const cipherOf = (i: number) =>
    (frames[i] as Uint8Array).subarray(
      (frames[i] as Uint8Array).length - cipherChunkLength(plainChunkLength(size, chunkSize, i)),
    );
  const offer = {
    type: 'delivery.offer',
    orderId,
    itemNumber: 101,
    title: 'Test',
    mimeType: 'video/webm',
    size,
    chunkSize,
    totalChunks: total,
    notBefore: Date.now(),
    notAfter: Date.now() + 600_000,
  };
  // The terminal's storage holds the rental with chunk 0 stored and synced.
  const dir = tempDir('rd-term-');
  const seeded = new FileStorage(dir);
  const { type: _, ...fields } = offer;
  const record = { ...fields, have: 1, expired: false };
  await seeded.writeChunk({ ...record, have: 0 }, 0, cipherOf(0));
  await seeded.flush(orderId);
  await seeded.putRental(record);
  await seeded.close();

  const received: { type: string; [k: string]: unknown }[] = [];
  const server = await fakeServer(pinned, (m, ws) => {
    received.push(m);
    if (m.type !== 'terminal.auth') return;
    assert.equal(m.pushedOffers, true, 'the terminal says it takes pushed offers');
    // The offer and every chunk at once, as the server pushes a new delivery; chunk 0 resent
    // garbled: kept on disk, it would show.
    ws.send(JSON.stringify({ ...offer, pushed: true }));
    for (let i = 0; i < total; i++)
      ws.send(i === 0 ? Uint8Array.from(frames[0] as Uint8Array).fill(7, 100) : (frames[i] as Uint8Array));
  });
  const t = await terminal(server, { dir });
  await t.log.waitFor('stored', (e) => e.orderId === orderId);
  await until(() => received.some((m) => m.type === 'delivery.progress' && m.have === total));
  const delivery = received.filter((m) => m.type.startsWith('delivery.'));
  assert.equal(
    delivery.some((m) => m.type === 'delivery.accept'),
    false,
    'no accept for a pushed offer',
  );
  assert.deepEqual(delivery[0], { type: 'delivery.progress', orderId, have: 1 }, 'what it held, first');
  assert.equal(
    delivery.some((m) => m.type === 'delivery.reject'),
    false,
  );
  // Chunk 0 on disk is the one it held, not the garbled resend; chunks 1 and 2 follow it as sent.
  const stored = readFileSync(join(dir, 'rentals', orderId, 'content.enc'));
  assert.deepEqual(new Uint8Array(stored), new Uint8Array(Buffer.concat(frames.map((_, i) => cipherOf(i)))));
});
