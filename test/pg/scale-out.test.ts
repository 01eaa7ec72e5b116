/**
 * Several instances on one PostgreSQL database (issue: scale-out). A terminal connected to one
 * instance gets what a customer on another instance links and rents; with the roles apart, a content
 * server killed mid-delivery is replaced by another and the rental completes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { cryptoReady } from '../../shared/crypto.ts';
import { RentalClient } from '../../shared/rental-client.ts';
import {
  cleanup,
  collect,
  customer,
  defer,
  rentNow,
  socket,
  tempDir,
  terminal,
  testServer,
} from '../harness.ts';
import { freshDatabase, PG_SKIP } from '../pg-databases.ts';
import { freePort, spawnServer } from '../reliability/server-process.ts';

afterEach(cleanup);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const demo = (file: string) => readFileSync(join('media/demo', file));

test('two instances: link, rent and watch the order through instance B, the terminal on instance A gets it all', {
  skip: PG_SKIP,
}, async () => {
  const db = await freshDatabase();
  defer(db.drop);
  // Instances share the database and the data folder (server keys, media).
  const dataDir = tempDir();
  const a = await testServer({ dataDir, databaseUrl: db.url });
  const b = await testServer({ dataDir, databaseUrl: db.url });
  const t = await terminal(a);
  const c = await customer(b);
  const updates: string[] = [];
  c.on('order.update', (m) => updates.push(m.order.status));
  // Linked through B: A tells its terminal, over LISTEN/NOTIFY.
  const { terminal: view } = await c.request('terminal.link', {
    code: t.core.pairingCode as string,
    name: 'Den',
  });
  await t.log.waitFor('linked', (e) => e.linked);
  assert.equal(view.online, true, 'B knows the terminal is online on A');

  const order = await rentNow(c, t.core.terminalId, 103);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId, 20_000);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId, 20_000);
  assert.equal(sha(await collect(t.core, order.orderId)), sha(demo('life-in-cells.webm')));
  // B's customer saw the progress A made.
  for (let i = 0; i < 100 && !updates.includes('window-open'); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(updates.includes('delivering') && updates.includes('window-open'), updates.join(','));
  // Each job was run by one instance: one licence, never two.
  assert.equal(t.log.events.filter((e) => e.type === 'licence').length, 1);

  // Unlinked through B: the terminal on A shows a code again, and the customer's store app open on A
  // drops it from its list.
  const onA = new RentalClient(a.wsUrl, socket);
  await onA.connect();
  defer(() => onA.close());
  await onA.request('auth.login', { email: c.email, password: 'correct horse battery' });
  const removed = new Promise((resolve) => onA.on('terminal.removed', resolve));
  await c.request('terminal.unlink', { terminalId: t.core.terminalId });
  await t.log.waitFor('linked', (e) => !e.linked);
  assert.deepEqual(await removed, { type: 'terminal.removed', terminalId: t.core.terminalId });
});

test('roles apart on PostgreSQL: two key servers, two content servers, one killed mid-delivery; the rental completes', {
  skip: PG_SKIP,
}, async () => {
  await cryptoReady();
  const db = await freshDatabase();
  defer(db.drop);
  const dataDir = tempDir();
  const [k1p, k2p, c1p, c2p] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const ws = (p: number) => `ws://127.0.0.1:${p}/ws`;
  const common = ['--database-url', db.url, '--min-rental-seconds', '1'];
  const key = (port: number) =>
    spawnServer(dataDir, port, [
      ...common,
      '--role',
      'key',
      '--content-url',
      ws(c1p),
      '--content-url',
      ws(c2p),
    ]);
  // Slow deliveries (300 KB/s), so the kill lands mid-transfer.
  const content = (port: number) =>
    spawnServer(dataDir, port, [
      ...common,
      '--role',
      'content',
      '--key-server',
      ws(k1p),
      '--key-server',
      ws(k2p),
      '--delivery-rate',
      '300',
    ]);
  const k1 = await key(k1p);
  const k2 = await key(k2p);
  const c1 = await content(c1p);
  const c2 = await content(c2p);
  for (const p of [k1, k2, c1, c2]) defer(() => p.kill());

  const t = await terminal({ wsUrl: k1.wsUrl });
  const c = await customer({ wsUrl: k2.wsUrl });
  await c.request('terminal.link', { code: t.core.pairingCode as string, name: 'Den' });
  await t.log.waitFor('linked', (e) => e.linked);
  const order = await rentNow(c, t.core.terminalId, 102);
  await t.log.waitFor('progress', (e) => e.orderId === order.orderId && e.have >= 4, 20_000);
  const started = (p: typeof c1) =>
    p.output().includes(`"event":"delivery-started","orderId":"${order.orderId}"`);
  const [delivering, spare] = started(c1) ? [c1, c2] : [c2, c1];
  assert.ok(started(delivering), 'one content server is delivering');
  await delivering.kill('SIGKILL');

  await t.log.waitFor('stored', (e) => e.orderId === order.orderId, 30_000);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId, 30_000);
  assert.equal(sha(await collect(t.core, order.orderId)), sha(demo('mandelbrot-voyage.webm')));
  // The spare took over from what the terminal had stored, not from the start.
  const resumed = new RegExp(
    `"event":"delivery-started","orderId":"${order.orderId}","from":([1-9]\\d*)`,
  ).exec(spare.output());
  assert.ok(resumed, `the spare resumed mid-title:\n${spare.output()}`);
});
