/**
 * Checkpoints off the event loop: the server's connection never checkpoints by itself, a worker
 * thread copies the write-ahead log into the database file, and a worker that cannot work says so
 * (the store then turns SQLite's own checkpoint back on). Plus the bounded cache the store reads
 * orders from.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import Database from 'better-sqlite3';
import { BoundedCache } from '../../server/bounded-cache.ts';
import { SqliteRepository } from '../../server/store/sqlite.ts';
import { WalCheckpointer } from '../../server/store/wal-checkpointer.ts';
import { cleanup, tempDir } from '../harness.ts';
import { CLASSIFIED, order, seed } from './repository-contract.ts';

afterEach(cleanup);

async function until(check: () => boolean, what: string, ms = 5_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('the worker copies the log into the database file; the writer never checkpoints itself', async () => {
  const file = join(tempDir('ckpt-'), 'db.sqlite');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t (x BLOB)');
  const insert = db.prepare('INSERT INTO t VALUES (?)');
  db.transaction(() => {
    for (let i = 0; i < 500; i++) insert.run(Buffer.alloc(4096, i));
  })();
  const dbSize = () => statSync(file).size;
  const before = dbSize();
  assert.ok(statSync(`${file}-wal`).size > 2_000_000, 'the rows are in the log');
  assert.ok(before < 100_000, 'and not yet in the database file');
  const errors: string[] = [];
  const worker = new WalCheckpointer(file, (e) => errors.push(e), 20);
  await until(() => dbSize() > 2_000_000, 'the checkpoint');
  // The log restarts from its beginning: the next commit writes at its start, not after 2 MB.
  db.prepare('INSERT INTO t VALUES (?)').run(Buffer.alloc(10));
  await worker.stop();
  assert.deepEqual(errors, []);
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n, 501);
  db.close();
});

test('a worker that cannot open the database reports it; stop() still resolves', async () => {
  const errors: string[] = [];
  const worker = new WalCheckpointer(
    join(tempDir('ckpt-'), 'missing', 'db.sqlite'),
    (e) => errors.push(e),
    20,
  );
  await until(() => errors.length > 0, 'the error');
  assert.match(errors[0] as string, /directory does not exist|unable to open/i);
  await worker.stop();
});

test("the store's orders reach the database file through the worker", async () => {
  const file = join(tempDir('ckpt-'), 'rental.sqlite');
  const repo = new SqliteRepository(file);
  const { customerId, terminalId } = await seed(repo);
  for (let i = 0; i < 20; i++) {
    const { o, jobs } = order(customerId, terminalId, Date.now());
    await repo.createOrder(o, jobs, CLASSIFIED);
  }
  // Far below SQLite's own threshold (1,000 pages in the log), so only the worker moves them.
  assert.ok(statSync(`${file}-wal`).size < 1000 * 4096);
  const peek = new Database(file, { readonly: true });
  const pages = peek.pragma('page_count', { simple: true }) as number;
  const pageSize = peek.pragma('page_size', { simple: true }) as number;
  peek.close();
  await until(() => statSync(file).size >= pages * pageSize, 'every page in the database file');
  await repo.close();
  const reopened = new Database(file, { readonly: true });
  assert.equal((reopened.prepare('SELECT COUNT(*) AS n FROM orders').get() as { n: number }).n, 20);
  reopened.close();
});

test('under steady writes the log restarts at its bound instead of growing', async () => {
  const file = join(tempDir('ckpt-'), 'rental.sqlite');
  const restartBytes = 1024 * 1024;
  const repo = new SqliteRepository(file, undefined, { checkpointEveryMs: 20, restartBytes });
  const { customerId, terminalId } = await seed(repo);
  // Commits back to back, as a busy server makes them: the worker's checkpoint is never done before
  // the next commit, so without the writer catching up the log only grows. A fixed amount of work,
  // not a time: 1,200 orders write about 20 MB of frames here, twenty times the bound (without the
  // catch-up the log reached 20 MB; it grows 35 MB a second in the orders benchmark).
  let largest = 0;
  let placed = 0;
  while (placed < 1_200) {
    await Promise.all(
      [0, 1, 2].map(() => {
        const { o, jobs } = order(customerId, terminalId, Date.now());
        return repo.createOrder(o, jobs, CLASSIFIED);
      }),
    );
    placed += 3;
    largest = Math.max(largest, statSync(`${file}-wal`).size);
  }
  await repo.close();
  // The bound, the commits made before the worker's next report, and the writer's catching up.
  assert.ok(largest < 3 * restartBytes, `the log reached ${largest} bytes`);
  const reopened = new Database(file, { readonly: true });
  assert.equal((reopened.prepare('SELECT COUNT(*) AS n FROM orders').get() as { n: number }).n, placed);
  assert.equal(reopened.pragma('integrity_check', { simple: true }), 'ok');
  reopened.close();
});

test('the bounded cache drops the least recently used entry, and entries age out', () => {
  let now = 0;
  const c = new BoundedCache<string, number>(2, 100, () => now);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.get('a'), 1); // a is now the most recent
  c.set('c', 3);
  assert.equal(c.get('b'), undefined, 'b was the least recently used');
  assert.deepEqual([c.get('a'), c.get('c'), c.size], [1, 3, 2]);
  now = 100;
  assert.equal(c.get('a'), undefined, 'older than its time to live');
  c.set('a', 4);
  c.delete('c');
  assert.deepEqual([c.get('a'), c.get('c')], [4, undefined]);
  c.clear();
  assert.equal(c.size, 0);
  // A bigger one: what was read lately stays, what was not is dropped first.
  const big = new BoundedCache<number, number>(100);
  for (let i = 0; i < 100; i++) big.set(i, i);
  assert.equal(big.get(0), 0);
  for (let i = 100; i < 150; i++) big.set(i, i);
  assert.equal(big.get(0), 0, 'read after 99 newer ones: kept');
  assert.deepEqual([big.get(1), big.get(50), big.get(51), big.size], [undefined, undefined, 51, 100]);
});
