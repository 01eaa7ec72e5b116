/**
 * Claims 16/22/28: every order yields a customer identification record, classified into the fixed
 * items and stored with the order; `npm run cli -- report` prints the same tables.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { afterEach, test } from 'node:test';
import { RentalClient } from '../shared/rental-client.ts';
import { cleanup, socket, storeEnv, terminal, testServer } from './harness.ts';

afterEach(cleanup);

test('each order is classified and stored with it; the report counts by every item', async () => {
  const server = await testServer();
  const c = new RentalClient(server.wsUrl, socket);
  await c.connect();
  const { customer } = await c.request('auth.register', {
    email: 'classified@example.com',
    password: 'a long password',
    name: 'Classified',
    ageBand: '25-34',
    region: 'west',
  });
  const t = await terminal(server);
  await c.request('terminal.link', { code: t.core.pairingCode as string, name: 'TV' });
  const a = await c.request('order.place', {
    itemNumber: 102,
    terminalId: t.core.terminalId,
    periodSeconds: 48 * 3600,
    schedule: { mode: 'now' },
  });
  const b = await c.request('order.place', {
    itemNumber: 103,
    terminalId: t.core.terminalId,
    periodSeconds: 3600,
    schedule: { mode: 'now' },
  });
  const rows = await server.repo.classifications(0);
  assert.equal(rows.length, 2);
  const ra = rows.find((r) => r.orderId === a.order.orderId);
  assert.deepEqual(
    { ...ra, createdAt: 0, dayPart: 'x' },
    {
      orderId: a.order.orderId,
      customerId: customer.customerId,
      itemNumber: 102,
      createdAt: 0,
      genre: 'science fiction',
      ageBand: '25-34',
      region: 'west',
      dayPart: 'x',
      lengthBand: '1-2-days',
      terminalType: 'headless',
    },
  );
  assert.equal(rows.find((r) => r.orderId === b.order.orderId)?.lengthBand, 'under-1-day');
  // A customer who gave nothing is classified as unknown, not refused.
  const anon = new RentalClient(server.wsUrl, socket);
  await anon.connect();
  await anon.request('auth.register', {
    email: 'anon@example.com',
    password: 'a long password',
    name: 'Anon',
  });
  const t2 = await terminal(server);
  await anon.request('terminal.link', { code: t2.core.pairingCode as string, name: 'Box' });
  await anon.request('order.place', {
    itemNumber: 101,
    terminalId: t2.core.terminalId,
    periodSeconds: 3600,
    schedule: { mode: 'now' },
  });
  const all = await server.repo.classifications(0);
  assert.equal(all.length, 3);
  assert.equal(all.filter((r) => r.ageBand === 'unknown' && r.region === 'unknown').length, 1);
  c.close();
  anon.close();

  const dataDir = server.dataDir;
  await server.close();
  const report = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'server/cli.ts', 'report', '--data', dataDir],
    { encoding: 'utf8', env: storeEnv(server) },
  );
  assert.equal(report.status, 0, report.stderr);
  assert.match(report.stdout, /Rentals: 3/);
  assert.match(report.stdout, /Rentals by genre\n(.*\n)*\s+science fiction\s+1\s+33\.3%/);
  assert.match(report.stdout, /Rentals by region\n\s+west\s+2\s+66\.7%/);
  assert.match(report.stdout, /Rentals by terminal type\n\s+headless\s+3\s+100\.0%/);
});
