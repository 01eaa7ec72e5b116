/**
 * Fresh PostgreSQL databases for tests, made on the server named by TEST_DATABASE_URL (a role that
 * may CREATE DATABASE) and dropped afterwards. When it is unset, PostgreSQL tests say so and skip.
 */
import pg from 'pg';

export const PG_URL = process.env.TEST_DATABASE_URL;
export const PG_SKIP = PG_URL
  ? false
  : 'TEST_DATABASE_URL is not set: run `npm run test:pg` (it starts Debian PostgreSQL) or set it to a postgres:// URL';

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A new, empty database; returns its URL and a function that drops it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!PG_URL) throw new Error('TEST_DATABASE_URL is not set');
  const name = `rd_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => dropDatabase(name),
  };
}

/**
 * Drop a test database, ending the sessions still on it. An autovacuum worker on it could make the
 * drop fail when the role may not end it (a server set up before scripts/pg-start.sh granted
 * pg_signal_backend): it finishes within moments, so the drop is tried again a few times.
 */
async function dropDatabase(name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)));
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}
