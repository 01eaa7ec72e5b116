/**
 * Key server and content store as separate servers, talking over the authenticated peer link.
 * The terminal is told the content server's address and receives content from it directly.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { WebSocket } from 'ws';
import { cleanup, collect, linkedPair, rentNow, tempDir, testServer } from './harness.ts';

afterEach(cleanup);

/** A key server and `n` content servers on one data folder (and database), linked as in DEPLOY.md. */
async function splitRoles(n: number, keyOpts: Parameters<typeof testServer>[0] = {}) {
  const dataDir = tempDir();
  const contentUrls: string[] = [];
  const key = await testServer({ dataDir, role: 'key', contentUrls, ...keyOpts });
  const contents = [];
  for (let k = 0; k < n; k++) {
    const content = await testServer({
      dataDir,
      role: 'content',
      keyServerUrls: [key.wsUrl],
      databaseUrl: key.databaseUrl,
    });
    contentUrls.push(content.wsUrl);
    contents.push(content);
  }
  return { key, contents, contentUrls };
}

test('roles apart: the key server instructs the content server, which delivers to the terminal', async () => {
  const {
    key,
    contents: [content],
  } = await splitRoles(1);
  if (!content) throw new Error('no content server');
  const { c, t } = await linkedPair(key);
  await t.log.waitFor('connected', (e) => e.url === content.wsUrl);

  const order = await rentNow(c, t.core.terminalId, 103, 60);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  const clear = await collect(t.core, order.orderId);
  assert.equal(clear.length, order.size);
  // The key server recorded the content server's progress durably.
  for (let i = 0; i < 50; i++) {
    const o = await key.repo.orderById(order.orderId);
    if (o?.contentState === 'delivered') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const row = await key.repo.orderById(order.orderId);
  assert.equal(row?.contentState, 'delivered');
  assert.equal(row?.chunksDelivered, order.totalChunks);
  assert.ok(content.hub.isOnline(t.core.terminalId), 'the terminal holds a connection to the content server');
});

test('two content servers share the deliveries of one key server', async () => {
  const { key, contents, contentUrls } = await splitRoles(2, { ordersPerMinute: 100 });
  const { c, t } = await linkedPair(key);
  for (const content of contents) await t.log.waitFor('connected', (e) => e.url === content.wsUrl);
  // Orders are spread by order id; with 16 of them, both servers get some (all on one: 2 in 65,536).
  const orders = [];
  for (let k = 0; k < 16; k++) orders.push(await rentNow(c, t.core.terminalId, 101, 60));
  for (const o of orders) await t.log.waitFor('stored', (e) => e.orderId === o.orderId);
  const from = new Set(t.log.events.flatMap((e) => (e.type === 'offer' ? [e.from] : [])));
  assert.deepEqual([...from].sort(), [...contentUrls].sort());
});

test('the peer link refuses a content server without the peer key', async () => {
  const key = await testServer({ role: 'key' });
  const ws = new WebSocket(key.wsUrl);
  const replies: { type: string; code?: string }[] = [];
  await new Promise<void>((resolve) => {
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      replies.push(m);
      if (m.type === 'server.hello')
        ws.send(JSON.stringify({ type: 'peer.auth', id: 1, mac: 'A'.repeat(43) }));
      else resolve();
    });
  });
  assert.equal(replies[1]?.code, 'BAD_SIGNATURE');
  ws.send(
    JSON.stringify({
      type: 'delivery.status',
      orderId: crypto.randomUUID(),
      have: 1,
      total: 1,
      state: 'delivered',
    }),
  );
  const next = await new Promise<{ code?: string }>((r) =>
    ws.once('message', (d) => r(JSON.parse(d.toString()))),
  );
  assert.equal(next.code, 'NOT_AUTHENTICATED');
  ws.close();
});
