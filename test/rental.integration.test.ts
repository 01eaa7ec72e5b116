/**
 * Whole rentals over real WebSockets on loopback, with a real SQLite-backed server and headless
 * terminals storing to real folders.
 */
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import type { TerminalError } from '../player/core/terminal-core.ts';
import type { StoredRental } from '../player/core/terminal-storage.ts';
import { unwrittenBytes } from '../player/core/unwritten-budget.ts';
import { FileStorage } from '../player/headless/file-storage.ts';
import { messageBuffersOut } from '../player/headless/message-pool.ts';
import { TerminalSocket } from '../player/headless/terminal-socket.ts';
import { ORDER_PUSH_COOLDOWN_MS } from '../server/key/orders.ts';
import type { RentalError } from '../shared/errors.ts';
import { LIMITS } from '../shared/limits.ts';
import {
  cleanup,
  collect,
  customer,
  defer,
  linkedPair,
  rentNow,
  sleep,
  tempDir,
  terminal,
  testServer,
  until,
} from './harness.ts';

afterEach(cleanup);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function mediaOf(server: Awaited<ReturnType<typeof testServer>>, itemNumber: number) {
  const item = await server.repo.catalogItem(itemNumber);
  assert.ok(item);
  return readFileSync(server.media.path(item.mediaFile));
}

test('full rental: order, encrypted delivery, licence, decrypt equals the original, expiry wipes', async () => {
  const server = await testServer();
  const { c, t, view } = await linkedPair(server, { progressEvery: 4 });
  assert.equal(view.online, true);
  const updates: string[] = [];
  c.on('order.update', (m) => updates.push(m.order.status));

  const order = await rentNow(c, t.core.terminalId, 102, 3);
  assert.equal(order.title, 'The Mandelbrot Voyage');
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  const progress = t.log.events.filter((e) => e.type === 'progress');
  assert.ok(progress.length >= 2, 'progress is reported while the delivery runs');

  // What the terminal stored is ciphertext, not the title.
  const original = await mediaOf(server, 102);
  const stored = readFileSync(join(t.dir, 'rentals', order.orderId, 'content.enc'));
  assert.notEqual(stored.subarray(0, 64).toString('hex'), original.subarray(0, 64).toString('hex'));
  assert.equal(stored.indexOf(original.subarray(1000, 1064)), -1);

  const clear = await collect(t.core, order.orderId);
  assert.equal(sha(clear), sha(original));

  // The store app saw it through to an open window (the server records the last progress report
  // just after the terminal stored it).
  for (let i = 0; i < 100 && !updates.includes('window-open'); i++) await sleep(20);
  const { orders } = await c.request('order.list', {});
  assert.equal(orders[0]?.status, 'window-open');
  assert.equal(orders[0]?.chunksDelivered, orders[0]?.totalChunks);
  // It saw the delivery under way in the reply (the order is stored as delivering, its terminal
  // online), or in an update: an update's state is read when it is sent, so on a fast delivery the
  // first may already say window-open.
  assert.ok(
    [order.status, ...updates].includes('delivering'),
    `delivering shown: ${[order.status, ...updates].join(', ')}`,
  );
  assert.ok(updates.includes('window-open'));

  await t.log.waitFor('expired', (e) => e.orderId === order.orderId, 6000);
  await assert.rejects(collect(t.core, order.orderId), (e: TerminalError) => e.code === 'EXPIRED');
  const rental = (await t.core.rentals()).find((r) => r.orderId === order.orderId);
  assert.equal(rental?.expired, true, 'the library row stays, marked expired');
  assert.equal(await new FileStorage(t.dir).licence(order.orderId), undefined, 'the key is gone');
  const serverOrder = await server.repo.orderById(order.orderId);
  await sleep(200);
  assert.equal(
    (await server.repo.orderById(order.orderId))?.wrappedKey,
    null,
    'the server forgot the key too',
  );
  assert.ok(serverOrder);
});

test('key delivery later: content pre-loads now, the licence arrives only at the key time', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  const keyAt = Date.now() + 1500;
  const { order } = await c.request('order.place', {
    itemNumber: 101,
    terminalId: t.core.terminalId,
    periodSeconds: 60,
    schedule: { mode: 'key-delivery', at: keyAt },
  });
  assert.equal(order.notBefore, keyAt);
  const stored = await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  assert.ok(stored.at < keyAt, 'content arrived before the key time');
  await assert.rejects(collect(t.core, order.orderId), (e: TerminalError) => e.code === 'NO_LICENCE');
  const lic = await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  assert.ok(lic.at >= keyAt, `licence came ${keyAt - lic.at} ms early`);
  assert.equal((await collect(t.core, order.orderId)).length, order.size);
});

test('delivery start in the future: nothing is delivered early', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  const at = Date.now() + 1200;
  const { order } = await c.request('order.place', {
    itemNumber: 101,
    terminalId: t.core.terminalId,
    periodSeconds: 60,
    schedule: { mode: 'delivery-start', at },
  });
  assert.equal(order.status, 'scheduled');
  await sleep(600);
  assert.equal(t.log.find('offer'), undefined, 'no offer before the delivery start');
  assert.equal(t.log.find('licence'), undefined);
  const offer = await t.log.waitFor('offer');
  assert.ok(offer.at >= at);
  await t.log.waitFor('licence');
});

/** Ingest `size` pseudo-random bytes (a WebM magic number first) as item `itemNumber`; returns them. */
async function ingestRandom(
  server: Awaited<ReturnType<typeof testServer>>,
  itemNumber: number,
  size: number,
) {
  const bytes = randomBytes(size);
  bytes.writeUInt32BE(0x1a45dfa3, 0); // delivery never looks further
  // From a folder of its own, removed after the test (the media store keeps its own copy).
  const file = join(tempDir('rd-media-'), `random-${itemNumber}.webm`);
  writeFileSync(file, bytes);
  await server.media.ingest(
    file,
    {
      itemNumber,
      title: `Random ${itemNumber}`,
      genre: 'Test',
      priceCents: 0,
      durationSeconds: 1,
      codecs: 'vp9',
    },
    undefined,
    false,
  );
  return bytes;
}

test('a delivery the terminal accepted leaves no timer behind on the server', async () => {
  // The offer's 30 s answer timeout once outlived the answer, holding the delivery's state: at
  // 1,000 orders/s, 30,000 of them and a full garbage collection every quarter second.
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  // Timers the delivery engine makes from here on and that are not yet fired or cleared (unref'd
  // ones included; other parts, such as a PostgreSQL pool, keep timers of their own).
  const live = new Set<number>();
  const hook = createHook({
    init: (id, type) => {
      if (type === 'Timeout' && new Error().stack?.includes('content/delivery.ts')) live.add(id);
    },
    destroy: (id) => {
      live.delete(id);
    },
  }).enable();
  defer(() => {
    hook.disable();
  });
  for (let n = 0; n < 10; n++) {
    const order = await rentNow(c, t.core.terminalId, 101, 600);
    await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
    await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  }
  // The last progress report may still be on its way to the server (its wait has a timer).
  await until(() => live.size === 0);
  assert.equal(live.size, 0, `${live.size} delivery timers left after 10 rentals`);
});

test('an order that changes several times within moments reaches the store app as few updates, none before the cooldown, the last one current', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  await ingestRandom(server, 780, 1024);
  const seen: { status: string; at: number }[] = [];
  c.on('order.update', (m) => seen.push({ status: m.order.status, at: Date.now() }));
  const statuses = () => seen.map((u) => u.status).join(', ');
  // A 1 KiB title: delivering, delivered and key delivered within a few milliseconds.
  const asked = Date.now();
  const order = await rentNow(c, t.core.terminalId, 780, 60);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  await until(() => seen.at(-1)?.status === 'window-open', 2000);
  await sleep(2 * ORDER_PUSH_COOLDOWN_MS); // nothing more is on its way
  assert.equal(seen.at(-1)?.status, 'window-open', `updates: ${statuses()}`);
  // The answer carried the order's state, so its first changes wait out a cooldown like later ones
  // (a few milliseconds of slack: the server's timer starts once the request has arrived, and
  // timers count from the start of their turn).
  const first = (seen[0]?.at ?? asked) - asked;
  assert.ok(first >= ORDER_PUSH_COOLDOWN_MS - 20, `first update ${first} ms after the order: ${statuses()}`);
  assert.ok(seen.length <= 2, `at most two updates: ${statuses()}`);
});

test('a one-chunk order to a terminal online here is stored as delivering, and its content state written once more: delivered', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  await ingestRandom(server, 781, 1024);
  const writes: string[] = [];
  const setContentProgress = server.repo.setContentProgress.bind(server.repo);
  server.repo.setContentProgress = async (orderId, state, chunks) => {
    writes.push(`${state} ${chunks}`);
    return setContentProgress(orderId, state, chunks);
  };
  const order = await rentNow(c, t.core.terminalId, 781, 60);
  assert.equal(order.contentState, 'delivering', 'the reply says the delivery is under way');
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  await until(() => writes.includes('delivered 1'));
  // Once written a start that repeated the job's own state and the last chunk's progress right
  // before the completion: four writes and four customer updates per small order. Then the start
  // as the job began, a few milliseconds after the order: two.
  assert.deepEqual(writes, ['delivered 1']);
  const o = await server.repo.orderById(order.orderId);
  assert.equal(o?.contentState, 'delivered');
  assert.equal(o?.chunksDelivered, 1);
});

test('a terminal keeps nothing in memory for an order once its title is stored', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  await ingestRandom(server, 782, 1024);
  await ingestRandom(server, 783, 300 * 1024);
  const orders = [await rentNow(c, t.core.terminalId, 782), await rentNow(c, t.core.terminalId, 783)];
  for (const o of orders) {
    await t.log.waitFor('stored', (e) => e.orderId === o.orderId);
    await t.log.waitFor('licence', (e) => e.orderId === o.orderId);
  }
  // Each order's write chain was kept until its rental expired: a map that grew with every order a
  // terminal took, copied whole with every new one (shared/churn-map.ts). Private, so read through a cast.
  const core = t.core as unknown as { writeChains: { size: number }; downloads: { size: number } };
  await until(() => core.writeChains.size === 0);
  assert.equal(core.writeChains.size, 0, 'no write chain is kept for a stored order');
  assert.equal(core.downloads.size, 0);
  // Both still play, whole.
  assert.deepEqual(await Promise.all(orders.map((o) => collect(t.core, o.orderId).then((b) => b.length))), [
    1024,
    300 * 1024,
  ]);
});

test('a title of many read-ahead blocks arrives byte for byte', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  // 5 MiB and a bit, pseudo-random: 81 chunks, eleven blocks of eight, so the server's read
  // buffers are reused many times over, and the last chunk and block are short. Decrypting it reads
  // six blocks of sixteen into the player's two lent buffers in turn, the last one short too.
  const bytes = await ingestRandom(server, 777, 5 * 1024 * 1024 + 1234);
  const order = await rentNow(c, t.core.terminalId, 777, 60);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  assert.equal(sha(await collect(t.core, order.orderId)), sha(bytes));
  // As the player's media feed decrypts: every chunk in one buffer, which the sink copies from.
  const parts: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let last: Uint8Array | undefined;
  await t.core.decrypt(
    order.orderId,
    (p) => {
      parts.push(Buffer.from(p));
      buffers.add(p.buffer);
      last = p;
    },
    undefined,
    { reuse: true },
  );
  assert.equal(sha(Buffer.concat(parts)), sha(bytes));
  assert.equal(parts.length, 81);
  assert.equal(buffers.size, 1, 'one buffer for all 81 chunks');
  assert.ok(
    last?.every((b) => b === 0),
    'the last plaintext is wiped when decryption ends',
  );
});

/** Folder storage that takes 25 ms per content write, and counts the bytes it has written. */
function slowDisk(dir: string) {
  let written = 0;
  const storage = new FileStorage(dir);
  const writeChunks = storage.writeChunks.bind(storage);
  storage.writeChunks = async (r, first, ciphers) => {
    await sleep(25);
    await writeChunks(r, first, ciphers);
    for (const c of ciphers) written += c.length;
  };
  const writeChunk = storage.writeChunk.bind(storage);
  storage.writeChunk = async (r, index, cipher) => {
    await sleep(25);
    await writeChunk(r, index, cipher);
    written += cipher.length;
  };
  return { storage, written: () => written };
}

test("a disk slower than the network holds the server back instead of filling the terminal's memory", async () => {
  const server = await testServer();
  // Storage that takes 25 ms per write, counting what it has written; a socket that counts what
  // has arrived and whether the core paused it. 28 MiB fits the server's window (32 MiB) whole, so
  // without back-pressure nearly all of it would wait in the terminal's memory (the bound is 16 MiB).
  let arrived = 0;
  let mostUnwritten = 0;
  let pauses = 0;
  const dir = tempDir('rd-slow-disk-');
  const { storage, written } = slowDisk(dir);
  const { c, t } = await linkedPair(server, {
    dir,
    storage,
    socketFactory: (url) => {
      // The headless terminal's own socket; this listener comes before the core's.
      const ws = new TerminalSocket(url);
      ws.addEventListener('message', (ev) => {
        if (typeof ev.data === 'string') return;
        arrived += (ev.data as Uint8Array).length;
        mostUnwritten = Math.max(mostUnwritten, arrived - written());
      });
      const pause = ws.pause.bind(ws);
      ws.pause = () => {
        pauses++;
        pause();
      };
      return ws;
    },
  });
  const buffersOut = messageBuffersOut();
  const bytes = await ingestRandom(server, 778, 28 * 1024 * 1024);
  const order = await rentNow(c, t.core.terminalId, 778, 60);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId, 30_000);
  // The bound, plus what one socket read already held when the pause came (frames are 64 KiB).
  assert.ok(
    mostUnwritten <= LIMITS.terminalUnwrittenPauseBytes + 1024 * 1024,
    `at most ${mostUnwritten} bytes waited unwritten`,
  );
  assert.ok(pauses > 0, 'the terminal paused its connection');
  assert.equal(unwrittenBytes(), 0, 'everything that arrived left the budget once written');
  assert.equal(messageBuffersOut(), buffersOut, "every chunk's buffer went back to the socket's pool");
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  assert.equal(sha(await collect(t.core, order.orderId)), sha(bytes));
});

test('a sync that fails mid-delivery rejects it and gives back the memory of what still waited', async () => {
  const server = await testServer();
  const dir = tempDir('rd-bad-sync-');
  const { storage } = slowDisk(dir);
  storage.flush = async () => {
    throw new Error('EIO: the disk went away');
  };
  const { c, t } = await linkedPair(server, { dir, storage });
  const buffersOut = messageBuffersOut();
  await ingestRandom(server, 779, 12 * 1024 * 1024);
  const order = await rentNow(c, t.core.terminalId, 779, 60);
  // The first progress report syncs after 64 chunks, while the slow writes leave more waiting.
  await t.log.waitFor('rejected', (e) => e.orderId === order.orderId, 20_000);
  await until(() => unwrittenBytes() === 0); // the batch being written when the sync failed
  assert.equal(unwrittenBytes(), 0);
  await until(() => messageBuffersOut() === buffersOut);
  assert.equal(messageBuffersOut(), buffersOut, 'chunks left waiting went back to the pool');
});

test('a terminal offline at delivery time gets content and key when it comes back', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  t.core.stop();
  await sleep(100);
  const order = await rentNow(c, t.core.terminalId, 103, 60);
  await sleep(300);
  const listed = (await c.request('order.list', {})).orders[0];
  assert.equal(listed?.contentState, 'waiting-terminal');
  assert.equal(listed?.keyState, 'waiting-terminal');
  const again = await terminal(server, { dir: t.dir });
  assert.equal(again.core.terminalId, t.core.terminalId, 'same identity after restart');
  await again.log.waitFor('stored', (e) => e.orderId === order.orderId);
  await again.log.waitFor('licence', (e) => e.orderId === order.orderId);
  assert.equal(sha(await collect(again.core, order.orderId)), sha(await mediaOf(server, 103)));
});

test('a terminal that goes away between its order and the delivery start shows as waiting for it', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  // The terminal stops once the order is stored, before its delivery starts.
  const createOrder = server.repo.createOrder.bind(server.repo);
  server.repo.createOrder = async (...args) => {
    await createOrder(...args);
    t.core.stop();
    await until(() => !server.hub.isOnline(t.core.terminalId), 5000); // the server sees it gone
  };
  const order = await rentNow(c, t.core.terminalId, 103, 60);
  assert.equal(order.contentState, 'delivering', 'placed while the terminal was online');
  let listed: Awaited<ReturnType<typeof rentNow>> | undefined;
  for (let i = 0; i < 100 && listed?.contentState !== 'waiting-terminal'; i++) {
    listed = (await c.request('order.list', {})).orders.find((o) => o.orderId === order.orderId);
    await sleep(20);
  }
  assert.equal(listed?.contentState, 'waiting-terminal');
});

test('the licence is never sent after the window: an offline terminal back too late gets nothing', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  t.core.stop();
  await sleep(100);
  const order = await rentNow(c, t.core.terminalId, 101, 1);
  await sleep(1500);
  const again = await terminal(server, { dir: t.dir });
  await sleep(500);
  assert.equal(again.log.find('licence'), undefined);
  assert.equal(again.log.find('offer'), undefined);
  const o = (await c.request('order.list', {})).orders.find((x) => x.orderId === order.orderId);
  assert.equal(o?.status, 'expired');
  assert.equal(o?.keyState, 'not-delivered');
});

test('server restarted mid-delivery: the order survives and the transfer resumes from the stored chunk', async () => {
  const dataDir = (await import('./harness.ts')).tempDir();
  let server = await testServer({ dataDir });
  const port = server.port;
  // A terminal whose storage stalls after chunk 8, so the server can be killed mid-transfer.
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const dir = (await import('./harness.ts')).tempDir('rd-term-');
  const base = new FileStorage(dir);
  const written: number[] = [];
  const storage = Object.assign(Object.create(base) as FileStorage, {
    // One chunk at a time (no batched writes), so every chunk passes through the hook below.
    writeChunks: undefined,
    writeChunk: async (r: StoredRental, index: number, cipher: Uint8Array) => {
      if (index === 8 && written.filter((i) => i === 8).length === 0) {
        written.push(8);
        await gate;
      }
      written.push(index);
      return base.writeChunk(r, index, cipher);
    },
  });
  const { c, t } = await linkedPair(server, { storage, dir, progressEvery: 4 });
  const order = await rentNow(c, t.core.terminalId, 102, 120);
  await t.log.waitFor('progress', (e) => e.have >= 8);
  await server.close();
  release();
  server = await testServer({ dataDir, port, databaseUrl: server.databaseUrl });
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId, 15_000);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  const offers = t.log.events.filter((e) => e.type === 'offer');
  assert.equal(offers.length, 1, 'the second offer resumed the existing rental instead of starting over');
  const firstAfterRestart = written.lastIndexOf(8);
  assert.ok(written.indexOf(0) === written.lastIndexOf(0), 'chunk 0 was not sent twice');
  assert.ok(firstAfterRestart > 0);
  // What waited behind the stalled write when the connection died left the budget with it.
  assert.equal(unwrittenBytes(), 0);
  assert.equal(sha(await collect(t.core, order.orderId)), sha(await mediaOf(server, 102)));
  // The order placed before the restart is still there after it.
  const c2 = await customer(server, `x${Date.now()}@example.com`);
  assert.ok(c2);
  assert.ok(await server.repo.orderById(order.orderId));
});

test("a customer cannot see, target, rename or unlink another customer's terminal", async () => {
  const server = await testServer();
  const { t, code: usedCode } = await linkedPair(server);
  const mallory = await customer(server);
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: RentalError) => e.code,
    );
  assert.equal(
    await code(
      mallory.request('order.place', {
        itemNumber: 101,
        terminalId: t.core.terminalId,
        periodSeconds: 60,
        schedule: { mode: 'now' },
      }),
    ),
    'NOT_FOUND',
  );
  assert.equal(
    await code(mallory.request('terminal.rename', { terminalId: t.core.terminalId, name: 'mine' })),
    'NOT_FOUND',
  );
  assert.equal(
    await code(mallory.request('terminal.unlink', { terminalId: t.core.terminalId })),
    'NOT_FOUND',
  );
  assert.deepEqual((await mallory.request('terminal.list', {})).terminals, []);
  assert.deepEqual((await mallory.request('order.list', {})).orders, []);
  // A used pairing code cannot be replayed to steal the terminal.
  assert.match(usedCode, /^[A-Z2-9]{4}-[A-Z2-9]{4}$/);
  assert.equal(
    await code(mallory.request('terminal.link', { code: usedCode, name: 'stolen' })),
    'PAIRING_CODE_INVALID',
  );
});

test('tampered ciphertext and a tampered stored licence are refused at decryption', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  const order = await rentNow(c, t.core.terminalId, 101, 60);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  const file = join(t.dir, 'rentals', order.orderId, 'content.enc');
  const bytes = readFileSync(file);
  bytes[5000] = (bytes[5000] as number) ^ 0xff;
  writeFileSync(file, bytes);
  await assert.rejects(collect(t.core, order.orderId), (e: TerminalError) => e.code === 'TAMPERED');
  bytes[5000] = (bytes[5000] as number) ^ 0xff;
  writeFileSync(file, bytes);
  assert.equal((await collect(t.core, order.orderId)).length, order.size);

  const licFile = join(t.dir, 'rentals', order.orderId, 'licence.json');
  const lic = JSON.parse(readFileSync(licFile, 'utf8'));
  const data = JSON.parse(Buffer.from(lic.data, 'base64url').toString());
  data.notAfter += 86_400_000;
  writeFileSync(
    licFile,
    JSON.stringify({ ...lic, data: Buffer.from(JSON.stringify(data)).toString('base64url') }),
  );
  await assert.rejects(collect(t.core, order.orderId), (e: TerminalError) => e.code === 'TAMPERED');
});

test('a clock turned back past the last server-signed time is refused offline', async () => {
  const server = await testServer();
  let skew = 0;
  const clock = { now: () => Date.now() + skew, monotonic: () => performance.now() };
  const { c, t } = await linkedPair(server, { clock });
  const order = await rentNow(c, t.core.terminalId, 101, 3600);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  t.core.stop();
  await server.close();
  // Offline, in a new process (no server anchor), with the clock set back two hours.
  skew = -2 * 3_600_000;
  const { TerminalCore } = await import('../player/core/terminal-core.ts');
  const offline = new TerminalCore({
    serverUrl: 'ws://127.0.0.1:9/ws',
    storage: new FileStorage(t.dir),
    socketFactory: () => {
      throw new Error('offline');
    },
    kind: 'headless',
    name: 'offline',
    clock,
  });
  await offline.init();
  await assert.rejects(collect(offline, order.orderId), (e: TerminalError) => e.code === 'CLOCK_TURNED_BACK');
  skew = 0;
  assert.equal(
    (await collect(offline, order.orderId)).length,
    order.size,
    'offline playback inside the window works',
  );
});

/**
 * A linked terminal, stopped, and its identity on a raw connection that answers nothing (no
 * acceptance, no acknowledgement): a half-dead socket, or a terminal that never acknowledges.
 */
async function silentTerminal() {
  const { rawTerminal, tempDir } = await import('./harness.ts');
  const server = await testServer();
  const dir = tempDir('rd-term-');
  const { c, t } = await linkedPair(server, { dir });
  t.core.stop();
  await sleep(100);
  const id = await new FileStorage(dir).loadIdentity();
  assert.ok(id);
  const raw = await rawTerminal(server.wsUrl, id);
  defer(() => raw.ws.terminate());
  return { server, dir, c, terminalId: t.core.terminalId, raw };
}

test('a terminal reconnecting while its old connection lingers gets the delivery and the key on the new one', async () => {
  // The same terminal's identity on a connection that has gone silent (a half-dead socket).
  const { server, dir, c, terminalId, raw: stale } = await silentTerminal();
  const order = await rentNow(c, terminalId, 101, 60);
  await sleep(300);
  assert.ok(
    stale.seen().includes('delivery.offer') && stale.seen().includes('licence.deliver'),
    'the stale connection got offer and key, and says nothing',
  );
  // The real terminal comes back; the server replaces the stale connection.
  const again = await terminal(server, { dir });
  await again.log.waitFor('stored', (e) => e.orderId === order.orderId, 8000);
  await again.log.waitFor('licence', (e) => e.orderId === order.orderId, 8000);
  assert.equal((await collect(again.core, order.orderId)).length, order.size);
  stale.ws.terminate();
});

test("a late notice of a terminal's own arrival does not send it the licence it still holds unacknowledged", async () => {
  // A connection that never acknowledges: its licence job stays taken, waiting for the ack.
  const { server, c, terminalId, raw } = await silentTerminal();
  await rentNow(c, terminalId, 101, 60);
  const licences = () => raw.seen().filter((type) => type === 'licence.deliver').length;
  await until(() => licences() === 1, 5000);
  assert.equal(licences(), 1);
  // The presence notice of this very connection, as it arrives when the database is slow: after
  // the licence went out. The job is woken and runs again, on the same connection.
  const conn = server.hub.terminal(terminalId);
  assert.ok(conn);
  server.hub.emit('terminal-online', conn);
  await until(() => licences() > 1, 1500);
  assert.equal(licences(), 1, 'the same connection got the licence twice');
});
