/**
 * `npm run test:soak`: a bounded soak on loopback. 1,000 terminals connect and disconnect at random
 * while 200 orders are placed over 5 minutes; then every order must be delivered exactly once and
 * the server's memory must come back to its baseline. Sizes and duration can be lowered with
 * SOAK_TERMINALS, SOAK_ORDERS and SOAK_SECONDS for a quick run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import Database from 'better-sqlite3';
import { TerminalCore } from '../../player/core/terminal-core.ts';
import { FileStorage } from '../../player/headless/file-storage.ts';
import { cryptoReady } from '../../shared/crypto.ts';
import { RentalClient } from '../../shared/rental-client.ts';
import { cleanup, defer, EventLog, sleep, socket, tempDir } from '../harness.ts';
import { freePort, spawnServer } from '../reliability/server-process.ts';

afterEach(cleanup);

const TERMINALS = Number(process.env.SOAK_TERMINALS ?? 1000);
const ORDERS = Number(process.env.SOAK_ORDERS ?? 200);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 300);
const PER_CUSTOMER = 5;

const rssMb = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};

interface Term {
  dir: string;
  core: TerminalCore;
  log: EventLog;
  id: string;
  online: boolean;
}

test(`soak: ${TERMINALS} terminals churning, ${ORDERS} orders over ${SECONDS} s`, {
  timeout: (SECONDS + 600) * 1000,
}, async () => {
  await cryptoReady();
  const dataDir = tempDir();
  const server = await spawnServer(dataDir, await freePort(), [
    '--connections-per-ip',
    String(TERMINALS * 3),
    '--min-rental-seconds',
    '1',
  ]);
  defer(() => server.kill());
  const pid = server.child.pid as number;
  const startTerm = async (t: Term) => {
    t.log = t.log ?? new EventLog();
    t.core = new TerminalCore({
      serverUrl: server.wsUrl,
      storage: new FileStorage(t.dir),
      socketFactory: socket,
      kind: 'headless',
      name: 'soak',
      onEvent: t.log.push,
    });
    await t.core.start();
    t.online = true;
  };
  // Customers, each with up to five terminals, linked by pairing code.
  const terms: Term[] = [];
  const customers: { client: RentalClient; terms: Term[] }[] = [];
  for (let i = 0; i < TERMINALS; i += PER_CUSTOMER) {
    const client = new RentalClient(server.wsUrl, socket, 60_000);
    await client.connect();
    defer(() => client.close());
    await client.request('auth.register', {
      email: `soak${i}@example.com`,
      password: 'soak password',
      name: `Soak ${i}`,
    });
    const mine: Term[] = [];
    for (let k = 0; k < PER_CUSTOMER && i + k < TERMINALS; k++) {
      const t = { dir: tempDir('rd-soak-'), online: false } as Term;
      await startTerm(t);
      await t.log.waitFor('welcome', () => true, 30_000);
      t.id = t.core.terminalId;
      await client.request('terminal.link', { code: t.core.pairingCode as string, name: `Box ${k}` });
      mine.push(t);
      terms.push(t);
    }
    customers.push({ client, terms: mine });
  }
  defer(() => {
    for (const t of terms) t.core.stop();
  });
  await sleep(2000);
  const baseline = rssMb(pid);

  // Churn: each terminal flips between online and offline at random.
  let churning = true;
  let flips = 0;
  const churn = (async () => {
    while (churning) {
      const t = terms[Math.floor(Math.random() * terms.length)] as Term;
      if (t.online) {
        t.core.stop();
        t.online = false;
      } else {
        await startTerm(t);
      }
      flips++;
      await sleep(Math.max(5, (SECONDS * 1000) / (TERMINALS * 4)));
    }
  })();

  // Orders spread over the run.
  const placed: { orderId: string; t: Term }[] = [];
  let peak = baseline;
  for (let n = 0; n < ORDERS; n++) {
    const cu = customers[n % customers.length] as (typeof customers)[number];
    const t = cu.terms[Math.floor(Math.random() * cu.terms.length)] as Term;
    const { order } = await cu.client.request('order.place', {
      itemNumber: 101 + (n % 3),
      terminalId: t.id,
      periodSeconds: 3600,
      schedule: { mode: 'now' },
    });
    placed.push({ orderId: order.orderId, t });
    peak = Math.max(peak, rssMb(pid));
    await sleep((SECONDS * 1000) / ORDERS);
  }
  churning = false;
  await churn;

  // Everyone back online; every order must arrive.
  for (const t of terms) if (!t.online) await startTerm(t);
  const deadline = Date.now() + 300_000;
  for (const { orderId, t } of placed) {
    await t.log.waitFor('licence', (e) => e.orderId === orderId, Math.max(1000, deadline - Date.now()));
    await t.log.waitFor('stored', (e) => e.orderId === orderId, Math.max(1000, deadline - Date.now()));
    peak = Math.max(peak, rssMb(pid));
  }
  // Exactly once: one licence per order, no job left, every order recorded complete by the server
  // (its record can trail the terminal's by a moment: wait for it, bounded).
  const db = new Database(join(dataDir, 'rental.sqlite'), { readonly: true });
  const q = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
  const deliveredSql =
    "SELECT COUNT(*) AS n FROM orders WHERE content_state = 'delivered' AND key_state = 'delivered'";
  for (let i = 0; i < 120 && q(deliveredSql) < ORDERS; i++) await sleep(500);
  const licences = q('SELECT COUNT(*) AS n FROM licences');
  const pendingContent = q("SELECT COUNT(*) AS n FROM jobs WHERE kind != 'expire'");
  const delivered = q(deliveredSql);
  db.close();
  for (const t of terms) t.core.stop();
  await sleep(5000);
  const after = rssMb(pid);
  process.stdout.write(
    `soak: ${TERMINALS} terminals, ${flips} connect/disconnect flips, ${placed.length} orders; ` +
      `licences ${licences}, delivered ${delivered}, pending jobs ${pendingContent}; ` +
      `server RSS baseline ${baseline.toFixed(0)} MB, peak ${peak.toFixed(0)} MB, after ${after.toFixed(0)} MB\n`,
  );
  assert.equal(licences, ORDERS);
  assert.equal(delivered, ORDERS);
  assert.equal(pendingContent, 0);
  assert.ok(
    after < baseline + 64,
    `server memory did not return to baseline: ${baseline.toFixed(0)} -> ${after.toFixed(0)} MB`,
  );
});
