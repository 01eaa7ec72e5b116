/**
 * How the SQLite store makes writes durable: orders and licences are acknowledged only after the
 * write-ahead log holding their commit is flushed (a flush shared by everything committed while
 * the previous one ran), and re-derivable writes commit when the commit window ends, or before any
 * other write.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import Database from 'better-sqlite3';
import { COMMIT_WINDOW_MS, SqliteRepository } from '../../server/store/sqlite.ts';
import { cleanup, tempDir } from '../harness.ts';
import { CLASSIFIED, order, seed } from './repository-contract.ts';

afterEach(cleanup);

/** A WAL flush the test completes by hand. */
function heldFlushes() {
  const pending: ((err: Error | null) => void)[] = [];
  return {
    pending,
    syncFile: (_fd: number, done: (err: Error | null) => void) => void pending.push(done),
    async next(): Promise<(err: Error | null) => void> {
      for (let i = 0; i < 1000 && pending.length === 0; i++) await new Promise((r) => setTimeout(r, 1));
      const done = pending.shift();
      assert.ok(done, 'a flush was asked for');
      return done;
    },
  };
}

const turn = () => new Promise((r) => setImmediate(r));
/** Past the end of the commit window that began with the last write. */
const windowEnds = () => new Promise((r) => setTimeout(r, COMMIT_WINDOW_MS + 2));

test('orders are acknowledged only after the flush of their commit; one turn shares one flush', async () => {
  const file = join(tempDir(), 'rental.sqlite');
  const flushes = heldFlushes();
  const repo = new SqliteRepository(file, flushes.syncFile);
  const { customerId, terminalId } = await seed(repo);
  const other = new Database(file, { readonly: true });
  try {
    const rows = Array.from({ length: 10 }, (_, i) => order(customerId, terminalId, Date.now() + i));
    const acked = new Set<string>();
    const placing = rows.map(({ o, jobs }) =>
      repo.createOrder(o, jobs, CLASSIFIED).then(() => acked.add(o.id)),
    );
    const first = await flushes.next();
    await turn();
    assert.equal(acked.size, 0, 'nothing is acknowledged before its flush');
    const count = () => (other.prepare('SELECT COUNT(*) AS n FROM orders').get() as { n: number }).n;
    assert.equal(count(), 10, 'committed already: another connection sees every order');
    assert.equal(flushes.pending.length, 0, 'the ten orders share one flush');

    // An order committed while that flush runs waits for the next one, which starts after it.
    const late = order(customerId, terminalId, Date.now() + 100);
    let lateAcked = false;
    const placingLate = repo.createOrder(late.o, late.jobs, CLASSIFIED).then(() => {
      lateAcked = true;
    });
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(flushes.pending.length, 0, 'no second flush while the first runs');
    first(null);
    await Promise.all(placing);
    assert.equal(acked.size, 10);
    const second = await flushes.next();
    await turn();
    assert.equal(lateAcked, false, 'the late order waits for a flush that began after its commit');
    second(null);
    await placingLate;
    assert.equal(lateAcked, true);
  } finally {
    other.close();
    await repo.close();
  }
});

test('a failed flush fails the writes it carried; the store keeps working', async () => {
  const flushes = heldFlushes();
  const repo = new SqliteRepository(join(tempDir(), 'rental.sqlite'), flushes.syncFile);
  const { customerId, terminalId } = await seed(repo);
  try {
    const a = order(customerId, terminalId, Date.now());
    const placing = repo.createOrder(a.o, a.jobs, CLASSIFIED);
    (await flushes.next())(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await assert.rejects(placing, /EIO/);
    const b = order(customerId, terminalId, Date.now());
    const placingB = repo.createOrder(b.o, b.jobs, CLASSIFIED);
    (await flushes.next())(null);
    await placingB;
    assert.equal((await repo.orderById(b.o.id))?.id, b.o.id);
  } finally {
    await repo.close();
  }
});

test('progress and job states commit when the window ends, with a durable batch, and before any other write', async () => {
  const file = join(tempDir(), 'rental.sqlite');
  const repo = new SqliteRepository(file);
  const { customerId, terminalId } = await seed(repo);
  const other = new Database(file, { readonly: true });
  const seen = (id: string) =>
    other.prepare('SELECT content_state, chunks_delivered FROM orders WHERE id = ?').get(id) as {
      content_state: string;
      chunks_delivered: number;
    };
  try {
    const a = order(customerId, terminalId, Date.now());
    await repo.createOrder(a.o, a.jobs, CLASSIFIED);
    await repo.setContentProgress(a.o.id, 'delivering', 3);
    assert.equal((await repo.orderById(a.o.id))?.chunksDelivered, 3, 'this connection reads it at once');
    await windowEnds();
    assert.deepEqual(
      seen(a.o.id),
      { content_state: 'delivering', chunks_delivered: 3 },
      'committed when the window ends',
    );

    // A durable write shares the window's commit with the pending ones.
    await repo.setContentProgress(a.o.id, 'delivering', 4);
    const b = order(customerId, terminalId, Date.now());
    await repo.createOrder(b.o, b.jobs, CLASSIFIED);
    assert.equal(seen(a.o.id).chunks_delivered, 4, 'committed by the time the order is');
    assert.ok(other.prepare('SELECT 1 FROM orders WHERE id = ?').get(b.o.id), 'and the order itself');

    await repo.setContentProgress(a.o.id, 'delivering', 5);
    await repo.completeJob(a.o.id, 'content');
    await repo.touchTerminal(terminalId, Date.now()); // a write that is not deferred, in the same turn
    assert.equal(seen(a.o.id).chunks_delivered, 5, 'committed before the other write');
    const jobs = other.prepare('SELECT kind FROM jobs WHERE order_id = ? ORDER BY kind').all(a.o.id);
    assert.deepEqual(jobs, [{ kind: 'expire' }, { kind: 'key' }]);
  } finally {
    other.close();
    await repo.close();
  }
});

test('in one batch, a write that fails is undone alone; the others commit', async () => {
  const file = join(tempDir(), 'rental.sqlite');
  const repo = new SqliteRepository(file);
  const { customerId, terminalId } = await seed(repo);
  try {
    const first = order(customerId, terminalId, Date.now());
    await repo.createOrder(first.o, first.jobs, CLASSIFIED);
    await repo.setContentProgress(first.o.id, 'delivering', 2); // deferred, shares the batch below
    const good = order(customerId, terminalId, Date.now());
    const results = await Promise.allSettled([
      repo.createOrder(first.o, first.jobs, CLASSIFIED), // the same order again: a constraint error
      repo.createOrder(good.o, good.jobs, CLASSIFIED),
    ]);
    assert.equal(results[0].status, 'rejected');
    assert.equal(results[1].status, 'fulfilled');
    assert.equal((await repo.orderById(good.o.id))?.id, good.o.id);
    // A licence is one statement, stored without a savepoint of its own: one for no order (a
    // foreign-key error) fails alone, and the other in its batch is stored.
    const licences = await Promise.allSettled([
      repo.saveLicence(randomUUID(), { data: 'none', sig: 's0' }, 1),
      repo.saveLicence(good.o.id, { data: 'good', sig: 's1' }, 1),
    ]);
    assert.deepEqual(
      licences.map((r) => r.status),
      ['rejected', 'fulfilled'],
    );
    // Read from another connection: committed, not just visible to this one.
    const other = new Database(file, { readonly: true });
    try {
      const delivered = other
        .prepare('SELECT chunks_delivered AS n FROM orders WHERE id = ?')
        .get(first.o.id);
      assert.deepEqual(delivered, { n: 2 }, 'the deferred write is committed');
      const rows = other.prepare('SELECT COUNT(*) AS n FROM classifications').get();
      assert.deepEqual(rows, { n: 2 }, 'no half of the failed write is left');
      assert.deepEqual(other.prepare('SELECT order_id AS o, data FROM licences').all(), [
        { o: good.o.id, data: 'good' },
      ]);
    } finally {
      other.close();
    }
  } finally {
    await repo.close();
  }
});
