/** The storage contract on SQLite (the embedded default), and its schema's upgrades. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import Database from 'better-sqlite3';
import { migrationsFor } from '../../server/store/migrations.ts';
import {
  LATEST_CLASSIFICATION,
  NEXT_JOB_AT,
  RECOVER_JOBS,
  RESET_JOB_STATES,
  WAKE_TERMINAL_JOBS,
} from '../../server/store/rows.ts';
import { SqliteRepository } from '../../server/store/sqlite.ts';
import { cleanup, tempDir } from '../harness.ts';
import { repositoryContract } from './repository-contract.ts';

afterEach(cleanup);

/** How SQLite would run a statement: its plan's steps, joined. */
function planOf(db: Database.Database, sql: string, ...args: unknown[]): string {
  const steps = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[];
  return steps.map((p) => p.detail).join('; ');
}

repositoryContract('SQLite', {
  async open() {
    const file = join(tempDir(), 'rental.sqlite');
    return { repo: new SqliteRepository(file), again: async () => new SqliteRepository(file) };
  },
});

test('a store of schema 8 upgrades: a waiting job wakes, and is due, through the indexes of jobs not pending and pending', async () => {
  const file = join(tempDir(), 'rental.sqlite');
  const old = new Database(file);
  for (const sql of migrationsFor('sqlite').slice(0, 8)) old.exec(sql);
  old.pragma('user_version = 8');
  // A job of an order the test does not make.
  old.pragma('foreign_keys = OFF');
  old
    .prepare(
      "INSERT INTO jobs (order_id, kind, run_at, terminal_id, state) VALUES (?, 'content', 1, 't1', ?)",
    )
    .run('o1', 'parked');
  old
    .prepare("INSERT INTO jobs (order_id, kind, run_at, terminal_id) VALUES ('o2', 'expire', 9, 't1')")
    .run();
  old.close();
  const repo = new SqliteRepository(file);
  assert.equal(await repo.wakeTerminalJobs('t1'), 1, 'the parked job, not the pending expiry');
  assert.equal(await repo.nextJobAt(0), 1, 'the woken job is the first due');
  await repo.close();
  const db = new Database(file, { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), migrationsFor('sqlite').length);
  // Every order's jobs on one index by terminal cost a third of each commit's pages (migrations.ts).
  // The statements the store runs (rows.ts), not copies of them.
  assert.match(planOf(db, WAKE_TERMINAL_JOBS, 't1'), /USING INDEX jobs_terminal_waiting/);
  assert.match(planOf(db, NEXT_JOB_AT, 0), /USING COVERING INDEX jobs_pending_due/);
  // Recovering a dead instance's jobs and the reset at startup walk only the jobs not pending.
  assert.match(planOf(db, RECOVER_JOBS, 0), /SCAN jobs USING INDEX jobs_terminal_waiting/);
  assert.match(planOf(db, RESET_JOB_STATES), /SCAN jobs USING INDEX jobs_terminal_waiting/);
  assert.deepEqual(
    db
      .prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND name IN ('jobs_terminal', 'jobs_due')",
      )
      .all(),
    [],
  );
  db.close();
});

test("a customer's latest classification is found through the orders' index, not a walk through all", () => {
  const db = new Database(':memory:');
  for (const sql of migrationsFor('sqlite')) db.exec(sql);
  const plan = planOf(db, LATEST_CLASSIFICATION, 'c');
  db.close();
  assert.match(plan, /SEARCH o USING (COVERING )?INDEX orders_customer \(customer_id=\?\)/);
  assert.doesNotMatch(plan, /SCAN|TEMP B-TREE/, plan);
});
