/**
 * kill -9 the server at random points of ordering, delivery and key release, 20 times over. After
 * each restart: every acknowledged order exists, every delivery completes, a licence is never issued
 * twice with different contents, and a terminal never receives content it did not order.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, test } from 'node:test';
import { FileStorage } from '../../player/headless/file-storage.ts';
import type { SignedEnvelope } from '../../shared/crypto.ts';
import { cryptoReady } from '../../shared/crypto.ts';
import { cleanup, collect, customer, defer, sleep, tempDir, terminal } from '../harness.ts';
import { freePort, spawnServer } from './server-process.ts';

afterEach(cleanup);

const ROUNDS = Number(process.env.KILL_ROUNDS ?? 20);
// Deliveries capped at 2 MB/s so a kill often lands mid-transfer.
const SERVER_ARGS = ['--min-rental-seconds', '1', '--delivery-rate', '2000'];

test(`kill -9 at random points, ${ROUNDS} times: no acknowledged order lost, every rental completes`, async () => {
  await cryptoReady();
  const dataDir = tempDir();
  const port = await freePort();
  let server = await spawnServer(dataDir, port, SERVER_ARGS);
  const stopServer = () => server.kill();
  defer(() => stopServer());

  // A terminal that records every licence it is sent, to catch a re-issue with different contents.
  const dir = tempDir('rd-term-');
  const base = new FileStorage(dir);
  const licencesSeen = new Map<string, Set<string>>();
  const storage = Object.assign(Object.create(base) as FileStorage, {
    putLicence: async (orderId: string, l: SignedEnvelope) => {
      const set = licencesSeen.get(orderId) ?? new Set();
      set.add(l.data);
      licencesSeen.set(orderId, set);
      return base.putLicence(orderId, l);
    },
  });
  const c = await customer(server);
  const t = await terminal(server, { dir, storage });
  await c.request('terminal.link', { code: t.core.pairingCode as string, name: 'Box' });
  // Another customer's terminal, which must never receive anything.
  const other = await terminal(server);
  const acknowledged: { orderId: string; itemNumber: number }[] = [];
  let killsDuringOrder = 0;

  for (let round = 0; round < ROUNDS; round++) {
    const client = await customer(server, c.email).catch(async () => {
      // Registered already: sign in instead.
      const { RentalClient } = await import('../../shared/rental-client.ts');
      const { socket } = await import('../harness.ts');
      const cl = new RentalClient(server.wsUrl, socket);
      await cl.connect();
      await cl.request('auth.login', { email: c.email, password: 'correct horse battery' });
      return cl;
    });
    const itemNumber = 101 + (round % 3);
    const mode = round % 4 === 3 ? 'key-delivery' : 'now';
    const placing = client
      .request('order.place', {
        itemNumber,
        terminalId: t.core.terminalId,
        periodSeconds: 600,
        schedule: mode === 'now' ? { mode: 'now' } : { mode: 'key-delivery', at: Date.now() + 300 },
      })
      .then((r) => acknowledged.push({ orderId: r.order.orderId, itemNumber }))
      .catch(() => {
        killsDuringOrder++;
      });
    // Kill somewhere in: placing the order, streaming the content, or releasing the key.
    // Every fifth round kills right away, racing the order itself.
    if (round % 5 !== 0) await sleep(Math.floor(Math.random() * 600));
    await stopServer();
    await placing;
    client.close();
    server = await spawnServer(dataDir, port, SERVER_ARGS);
  }

  // After the last restart everything acknowledged must complete.
  for (const { orderId, itemNumber } of acknowledged) {
    await t.log.waitFor('licence', (e) => e.orderId === orderId, 30_000);
    await t.log.waitFor('stored', (e) => e.orderId === orderId, 30_000);
    const clear = await collect(t.core, orderId);
    const original = (await import('node:fs')).readFileSync(
      `media/demo/${['colour-bars-at-dawn', 'mandelbrot-voyage', 'life-in-cells'][itemNumber - 101]}.webm`,
    );
    assert.equal(
      createHash('sha256').update(clear).digest('hex'),
      createHash('sha256').update(original).digest('hex'),
    );
  }
  for (const [orderId, set] of licencesSeen)
    assert.equal(set.size, 1, `order ${orderId} got ${set.size} different licences`);
  assert.equal(other.log.find('offer'), undefined, 'the other terminal received nothing');
  assert.equal(other.log.find('licence'), undefined);
  const { RentalClient } = await import('../../shared/rental-client.ts');
  const { socket } = await import('../harness.ts');
  const check = new RentalClient(server.wsUrl, socket);
  await check.connect();
  await check.request('auth.login', { email: c.email, password: 'correct horse battery' });
  const { orders } = await check.request('order.list', {});
  for (const a of acknowledged)
    assert.ok(
      orders.some((o) => o.orderId === a.orderId),
      `acknowledged order ${a.orderId} lost`,
    );
  check.close();
  process.stdout.write(
    `kill -9: ${ROUNDS} faults injected, ${acknowledged.length} orders acknowledged, ${killsDuringOrder} killed before acknowledging, orders lost: 0\n`,
  );
  await stopServer();
});
