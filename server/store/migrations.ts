/**
 * The schema, once, for both engines. Written in the SQLite dialect (the shipped history, never
 * edited); PostgreSQL gets the same statements with its type names. Add the next one at the end.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE customers (
     id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
     password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE sessions (
     token_hash TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
     created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER);
   CREATE TABLE terminals (
     id TEXT PRIMARY KEY, sign_public_key BLOB NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
     customer_id TEXT REFERENCES customers(id), linked_at INTEGER,
     created_at INTEGER NOT NULL, last_seen_at INTEGER);
   CREATE INDEX terminals_customer ON terminals(customer_id);
   CREATE TABLE pairing_codes (
     code TEXT PRIMARY KEY, terminal_id TEXT NOT NULL UNIQUE REFERENCES terminals(id),
     expires_at INTEGER NOT NULL);
   CREATE TABLE catalog (
     item_number INTEGER PRIMARY KEY, title TEXT NOT NULL, genre TEXT NOT NULL, year INTEGER,
     synopsis TEXT NOT NULL, duration_s REAL NOT NULL, price_cents INTEGER NOT NULL,
     poster_file TEXT, media_file TEXT NOT NULL, mime_type TEXT NOT NULL, size INTEGER NOT NULL,
     sha256 TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE orders (
     id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
     item_number INTEGER NOT NULL REFERENCES catalog(item_number),
     terminal_id TEXT NOT NULL REFERENCES terminals(id), period_s INTEGER NOT NULL,
     content_at INTEGER NOT NULL, key_at INTEGER NOT NULL, not_before INTEGER NOT NULL,
     not_after INTEGER NOT NULL, wrapped_key BLOB, content_state TEXT NOT NULL, key_state TEXT NOT NULL,
     chunks_delivered INTEGER NOT NULL, total_chunks INTEGER NOT NULL, size INTEGER NOT NULL,
     chunk_size INTEGER NOT NULL, price_cents INTEGER NOT NULL, created_at INTEGER NOT NULL);
   CREATE INDEX orders_customer ON orders(customer_id, created_at);
   CREATE TABLE jobs (
     order_id TEXT NOT NULL REFERENCES orders(id), kind TEXT NOT NULL, run_at INTEGER NOT NULL,
     terminal_id TEXT NOT NULL, PRIMARY KEY (order_id, kind));
   CREATE TABLE licences (
     order_id TEXT PRIMARY KEY REFERENCES orders(id), data TEXT NOT NULL, sig TEXT NOT NULL,
     issued_at INTEGER NOT NULL);`,
  // 2: the queue asks for due jobs and the next due time; without this it scans every job.
  'CREATE INDEX jobs_run_at ON jobs(run_at);',
  // 3: a job handed off (dispatched) or waiting for its terminal (parked) is not looked at again
  // until something changes, so a look at the queue costs what is newly due, not what is waiting.
  `ALTER TABLE jobs ADD COLUMN state TEXT NOT NULL DEFAULT 'pending';
   DROP INDEX jobs_run_at;
   CREATE INDEX jobs_due ON jobs(state, run_at);
   CREATE INDEX jobs_terminal ON jobs(terminal_id);`,
  // 4: customer identification information (claims 16/22/28). Append-only: rows are never updated
  // or deleted; sign-up asks (optionally) for age band and region.
  `ALTER TABLE customers ADD COLUMN age_band TEXT;
   ALTER TABLE customers ADD COLUMN region TEXT;
   CREATE TABLE classifications (
     order_id TEXT PRIMARY KEY REFERENCES orders(id), customer_id TEXT NOT NULL REFERENCES customers(id),
     item_number INTEGER NOT NULL, created_at INTEGER NOT NULL, genre TEXT NOT NULL, age_band TEXT NOT NULL,
     region TEXT NOT NULL, day_part TEXT NOT NULL, length_band TEXT NOT NULL, terminal_type TEXT NOT NULL);
   CREATE INDEX classifications_created ON classifications(created_at);`,
  // 5: the ad inventory (claims 19/25): text, a creative file, target segments, flight dates, weight.
  `CREATE TABLE ads (
     id TEXT PRIMARY KEY, text TEXT NOT NULL, creative_file TEXT NOT NULL, mime_type TEXT NOT NULL,
     segments TEXT NOT NULL, starts_at INTEGER NOT NULL, ends_at INTEGER NOT NULL, weight INTEGER NOT NULL,
     created_at INTEGER NOT NULL, removed_at INTEGER);`,
  // 6: ad impressions, keyed by the terminal's own impression id so a resend is counted once.
  `CREATE TABLE impressions (
     impression_id TEXT PRIMARY KEY, ad_id TEXT NOT NULL REFERENCES ads(id), terminal_id TEXT NOT NULL,
     shown_at INTEGER NOT NULL, completed INTEGER NOT NULL, received_at INTEGER NOT NULL);
   CREATE INDEX impressions_ad ON impressions(ad_id);`,
  // 7: a title can be rented without a pre-roll (claims 14/20/26); admins see analytics.
  `ALTER TABLE catalog ADD COLUMN preroll INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE customers ADD COLUMN role TEXT NOT NULL DEFAULT 'customer';`,
  // 8: several server instances on one database. Each beats in the instances table; a terminal's connection
  // is recorded against the instance holding it; a job records the instance that took it, so the
  // jobs of an instance that stopped beating go back to the queue.
  `CREATE TABLE instances (id TEXT PRIMARY KEY, role TEXT NOT NULL, started_at INTEGER NOT NULL,
     beat_at INTEGER NOT NULL);
   CREATE TABLE terminal_presence (terminal_id TEXT PRIMARY KEY REFERENCES terminals(id),
     instance_id TEXT NOT NULL, since INTEGER NOT NULL);
   ALTER TABLE jobs ADD COLUMN claimed_by TEXT;`,
  // 9: the jobs' indexes hold only the jobs their queries ask for. By terminal, only jobs not pending
  // are looked up (to wake them when it connects): indexing every job put each order's three jobs,
  // and the deletes of two, on the leaf of its terminal among all the rentals' expiry jobs, 9.9 of
  // the 32 pages each commit wrote to the WAL at 1,000 orders/s. By due time, only pending jobs are:
  // an order's content and key jobs are taken as it is placed and deleted when done, so they never
  // need to be found by time. (Jobs not pending are the few in flight and those parked; recovering
  // and resetting them walks the first index.)
  `DROP INDEX jobs_terminal;
   CREATE INDEX jobs_terminal_waiting ON jobs(terminal_id) WHERE state <> 'pending';
   DROP INDEX jobs_due;
   CREATE INDEX jobs_pending_due ON jobs(run_at) WHERE state = 'pending';`,
];

export type Dialect = 'sqlite' | 'pg';

/** SQLite's INTEGER holds 64 bits (epoch milliseconds); in PostgreSQL that is BIGINT. */
const toPg = (sql: string) =>
  sql
    .replace(/\bBLOB\b/g, 'BYTEA')
    .replace(/\bINTEGER\b/g, 'BIGINT')
    .replace(/\bREAL\b/g, 'DOUBLE PRECISION');

export function migrationsFor(dialect: Dialect): readonly string[] {
  return dialect === 'sqlite' ? MIGRATIONS : MIGRATIONS.map(toPg);
}
