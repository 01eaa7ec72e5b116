/**
 * PostgreSQL (`pg`) implementation of the repository, chosen by DATABASE_URL, for several server
 * instances sharing one database; and the cluster channel between them (LISTEN/NOTIFY). Jobs are
 * taken with SELECT … FOR UPDATE SKIP LOCKED, so each is run by exactly one instance.
 */
import pg from 'pg';
import type { Classification } from '../../shared/classification.ts';
import { type Cluster, type ClusterChannel, Listeners } from '../cluster.ts';
import { log } from '../log.ts';
import { migrationsFor } from './migrations.ts';
import {
  type CatalogRow,
  type CustomerRow,
  INSTANCE_LIVE_MS,
  type JobKind,
  type JobRow,
  type JobState,
  type OrderRow,
  type Repository,
  type TerminalRow,
} from './repository.ts';
import {
  adOf,
  adParams,
  catalogOf,
  catalogParams,
  classificationOf,
  classificationParams,
  customerOf,
  customerParams,
  DUE_JOBS_WHERE,
  IMPRESSION_ROWS,
  INSERT_AD,
  INSERT_CLASSIFICATION,
  INSERT_CUSTOMER,
  INSERT_IMPRESSION,
  INSERT_INSTANCE,
  INSERT_JOB,
  INSERT_ORDER,
  impressionOf,
  impressionParams,
  jobOf,
  jobParams,
  LATEST_CLASSIFICATION,
  NAMED_ORDER_SELECT,
  NEXT_JOB_AT,
  namedOrderOf,
  orderOf,
  orderParams,
  RECOVER_JOBS,
  RESET_JOB_STATES,
  type Row,
  segmentsOf,
  TERMINAL_SELECT,
  terminalOf,
  UPSERT_CATALOG,
  UPSERT_PRESENCE,
  UPSERT_TERMINAL,
  WAKE_TERMINAL_JOBS,
} from './rows.ts';

// Epoch milliseconds are BIGINT, counts are BIGINT, sums are NUMERIC: all fit a JS number here.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

/** The shared statements use ? placeholders; PostgreSQL numbers them. */
const numbered = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};
const cache = new Map<string, string>();
const toPg = (sql: string) => {
  let s = cache.get(sql);
  if (s === undefined) {
    s = numbered(sql);
    cache.set(sql, s);
  }
  return s;
};

/** host:port/database of a URL, for messages: never the password. */
export function where(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** Any one instance migrates at a time; the others wait on this advisory lock. */
const MIGRATION_LOCK = 7_264_211;

type Queryable = pg.Pool | pg.PoolClient;

export class PgRepository implements Repository {
  readonly shared = true;
  readonly readsOwnWritesEarly = false;

  private constructor(private readonly pool: pg.Pool) {}

  static async open(url: string): Promise<PgRepository> {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    // A dropped idle connection must not crash the process; the pool replaces it.
    pool.on('error', (err) => log('warn', 'postgres-idle-client-error', { error: err.message }));
    const repo = new PgRepository(pool);
    try {
      await repo.migrate();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new Error(`cannot open the PostgreSQL database ${where(url)}: ${(err as Error).message}`);
    }
    return repo;
  }

  private async migrate(): Promise<void> {
    await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const r = await c.query('SELECT version FROM schema_version');
      let version = (r.rows[0]?.version as number | undefined) ?? 0;
      if (r.rowCount === 0) await c.query('INSERT INTO schema_version (version) VALUES (0)');
      const migrations = migrationsFor('pg');
      for (; version < migrations.length; version++) await c.query(migrations[version] as string);
      await c.query('UPDATE schema_version SET version = $1', [version]);
    });
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  private async all(sql: string, args: unknown[] = [], on: Queryable = this.pool): Promise<Row[]> {
    return (await on.query(toPg(sql), args)).rows as Row[];
  }
  private async get(sql: string, args: unknown[] = [], on: Queryable = this.pool): Promise<Row | undefined> {
    return (await this.all(sql, args, on))[0];
  }
  private async run(sql: string, args: unknown[] = [], on: Queryable = this.pool): Promise<number> {
    return (await on.query(toPg(sql), args)).rowCount ?? 0;
  }

  async close() {
    await this.pool.end();
  }

  async createCustomer(c: CustomerRow) {
    return (await this.run(INSERT_CUSTOMER, customerParams(c))) === 1;
  }
  async customerByEmail(email: string) {
    const r = await this.get('SELECT * FROM customers WHERE email = ?', [email]);
    return r && customerOf(r);
  }
  async customerById(id: string) {
    const r = await this.get('SELECT * FROM customers WHERE id = ?', [id]);
    return r && customerOf(r);
  }
  async setCustomerRole(email: string, role: CustomerRow['role']) {
    return (await this.run('UPDATE customers SET role = ? WHERE email = ?', [role, email])) > 0;
  }

  async createSession(tokenHash: string, customerId: string, createdAt: number, expiresAt: number) {
    await this.run(
      'INSERT INTO sessions (token_hash, customer_id, created_at, expires_at) VALUES (?,?,?,?)',
      [tokenHash, customerId, createdAt, expiresAt],
    );
  }
  async sessionCustomer(tokenHash: string, now: number) {
    const r = await this.get(
      'SELECT customer_id FROM sessions WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?',
      [tokenHash, now],
    );
    return r?.customer_id as string | undefined;
  }
  async revokeSession(tokenHash: string, now: number) {
    await this.run('UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL', [
      now,
      tokenHash,
    ]);
  }

  async upsertTerminal(t: Omit<TerminalRow, 'customerId' | 'linkedAt' | 'lastSeenAt' | 'online'>) {
    await this.run(UPSERT_TERMINAL, [t.id, Buffer.from(t.signPublicKey), t.kind, t.name, t.createdAt]);
    return (await this.terminalById(t.id)) as TerminalRow;
  }
  async terminalById(id: string) {
    const r = await this.get(`${TERMINAL_SELECT} WHERE t.id = ?`, [Date.now() - INSTANCE_LIVE_MS, id]);
    return r && terminalOf(r);
  }
  async terminalsOfCustomer(customerId: string) {
    const rows = await this.all(`${TERMINAL_SELECT} WHERE t.customer_id = ? ORDER BY t.linked_at`, [
      Date.now() - INSTANCE_LIVE_MS,
      customerId,
    ]);
    return rows.map(terminalOf);
  }
  async linkTerminal(terminalId: string, customerId: string, name: string, now: number) {
    await this.run('UPDATE terminals SET customer_id = ?, name = ?, linked_at = ? WHERE id = ?', [
      customerId,
      name,
      now,
      terminalId,
    ]);
  }
  async renameTerminal(terminalId: string, name: string) {
    await this.run('UPDATE terminals SET name = ? WHERE id = ?', [name, terminalId]);
  }
  async unlinkTerminal(terminalId: string) {
    await this.run('UPDATE terminals SET customer_id = NULL, linked_at = NULL WHERE id = ?', [terminalId]);
  }
  async touchTerminal(terminalId: string, now: number) {
    await this.run('UPDATE terminals SET last_seen_at = ? WHERE id = ?', [now, terminalId]);
  }

  async beat(instanceId: string, role: string, now: number) {
    await this.run(INSERT_INSTANCE, [instanceId, role, now, now]);
  }
  async setPresence(terminalId: string, instanceId: string, online: boolean, now: number) {
    if (online) await this.run(UPSERT_PRESENCE, [terminalId, instanceId, now]);
    else
      await this.run('DELETE FROM terminal_presence WHERE terminal_id = ? AND instance_id = ?', [
        terminalId,
        instanceId,
      ]);
  }
  async clearPresence() {
    await this.run('DELETE FROM terminal_presence');
  }

  async setPairingCode(terminalId: string, code: string, expiresAt: number) {
    await this.tx(async (c) => {
      await this.run('DELETE FROM pairing_codes WHERE terminal_id = ?', [terminalId], c);
      await this.run(
        'INSERT INTO pairing_codes (code, terminal_id, expires_at) VALUES (?,?,?)',
        [code, terminalId, expiresAt],
        c,
      );
    });
  }
  async pairingCodeOf(terminalId: string, now: number) {
    const r = await this.get(
      'SELECT code, expires_at FROM pairing_codes WHERE terminal_id = ? AND expires_at > ?',
      [terminalId, now],
    );
    return r && { code: r.code as string, expiresAt: r.expires_at as number };
  }
  async takePairingCode(code: string, now: number) {
    // Deleted and read in one statement: two instances cannot both take the same code.
    const r = await this.get('DELETE FROM pairing_codes WHERE code = ? RETURNING terminal_id, expires_at', [
      code,
    ]);
    return r && (r.expires_at as number) > now ? (r.terminal_id as string) : undefined;
  }

  async upsertCatalogItem(c: CatalogRow) {
    await this.run(UPSERT_CATALOG, catalogParams(c));
  }
  async setCatalogPreroll(itemNumber: number, on: boolean) {
    return (
      (await this.run('UPDATE catalog SET preroll = ? WHERE item_number = ?', [on ? 1 : 0, itemNumber])) > 0
    );
  }
  async catalog() {
    return (await this.all('SELECT * FROM catalog ORDER BY item_number')).map(catalogOf);
  }
  async catalogItem(itemNumber: number) {
    const r = await this.get('SELECT * FROM catalog WHERE item_number = ?', [itemNumber]);
    return r && catalogOf(r);
  }

  async createOrder(o: OrderRow, jobs: JobRow[], c: Classification) {
    await this.tx(async (client) => {
      await this.run(INSERT_ORDER, orderParams(o), client);
      for (const j of jobs) await this.run(INSERT_JOB, jobParams(j), client);
      await this.run(INSERT_CLASSIFICATION, classificationParams(o, c), client);
    });
  }
  async classifications(since: number) {
    return (
      await this.all('SELECT * FROM classifications WHERE created_at >= ? ORDER BY created_at', [since])
    ).map(classificationOf);
  }
  async latestClassification(customerId: string) {
    const r = await this.get(LATEST_CLASSIFICATION, [customerId]);
    return r && segmentsOf(classificationOf(r));
  }

  async addAd(a: Parameters<Repository['addAd']>[0]) {
    await this.run(INSERT_AD, adParams(a));
  }
  async ads(includeRemoved = false) {
    return (
      await this.all(
        `SELECT * FROM ads ${includeRemoved ? '' : 'WHERE removed_at IS NULL'} ORDER BY created_at`,
      )
    ).map(adOf);
  }
  async removeAd(adId: string, now: number) {
    return (
      (await this.run('UPDATE ads SET removed_at = ? WHERE id = ? AND removed_at IS NULL', [now, adId])) === 1
    );
  }
  async recordImpression(i: Parameters<Repository['recordImpression']>[0]) {
    return (await this.run(INSERT_IMPRESSION, impressionParams(i))) === 1;
  }
  async impressionRows(since: number) {
    return (await this.all(IMPRESSION_ROWS, [since])).map(impressionOf);
  }
  async impressionCounts() {
    return (
      await this.all(
        'SELECT ad_id, COUNT(*) AS shown, SUM(completed) AS completed FROM impressions GROUP BY ad_id',
      )
    ).map((r) => ({ adId: r.ad_id as string, shown: r.shown as number, completed: r.completed as number }));
  }

  async orderById(id: string) {
    const r = await this.get('SELECT * FROM orders WHERE id = ?', [id]);
    return r && orderOf(r);
  }
  async namedOrder(id: string) {
    const r = await this.get(`${NAMED_ORDER_SELECT} WHERE o.id = ?`, [id]);
    return r && namedOrderOf(r);
  }
  async ordersOfCustomer(customerId: string) {
    return (
      await this.all(`${NAMED_ORDER_SELECT} WHERE o.customer_id = ? ORDER BY o.created_at DESC`, [customerId])
    ).map(namedOrderOf);
  }
  async countRecentOrders(customerId: string, since: number) {
    const r = await this.get('SELECT COUNT(*) AS n FROM orders WHERE customer_id = ? AND created_at >= ?', [
      customerId,
      since,
    ]);
    return (r?.n as number) ?? 0;
  }
  async setContentProgress(orderId: string, state: OrderRow['contentState'], chunksDelivered: number) {
    await this.run(
      "UPDATE orders SET content_state = ?, chunks_delivered = ? WHERE id = ? AND content_state <> 'delivered'",
      [state, chunksDelivered, orderId],
    );
  }
  async setKeyState(orderId: string, state: OrderRow['keyState']) {
    await this.run('UPDATE orders SET key_state = ? WHERE id = ?', [state, orderId]);
  }
  async wipeOrderKey(orderId: string) {
    await this.run('UPDATE orders SET wrapped_key = NULL WHERE id = ?', [orderId]);
  }

  async pendingJobs() {
    return (await this.all('SELECT * FROM jobs ORDER BY run_at')).map(jobOf);
  }
  async dueJobs(now: number, limit: number, instanceId: string, contentAnywhere: boolean) {
    const rows = await this.all(
      `UPDATE jobs SET state = 'claimed', claimed_by = ? WHERE (order_id, kind) IN (
         SELECT j.order_id, j.kind FROM jobs j WHERE ${DUE_JOBS_WHERE}
         ORDER BY j.run_at LIMIT ? FOR UPDATE OF j SKIP LOCKED)
       RETURNING order_id, kind, run_at, terminal_id`,
      [instanceId, now, contentAnywhere, now - INSTANCE_LIVE_MS, instanceId, limit],
    );
    return rows.map(jobOf).sort((a, b) => a.runAt - b.runAt);
  }
  async recoverJobs(now: number) {
    return this.run(RECOVER_JOBS, [now - INSTANCE_LIVE_MS]);
  }
  async nextJobAt(after: number) {
    const r = await this.get(NEXT_JOB_AT, [after]);
    return (r?.t as number | null) ?? undefined;
  }
  async setJobState(orderId: string, kind: JobKind, state: JobState) {
    await this.run('UPDATE jobs SET state = ? WHERE order_id = ? AND kind = ?', [state, orderId, kind]);
  }
  async wakeTerminalJobs(terminalId: string) {
    return this.run(WAKE_TERMINAL_JOBS, [terminalId]);
  }
  async resetJobStates() {
    await this.run(RESET_JOB_STATES);
  }
  async completeJob(orderId: string, kind: JobKind) {
    await this.run('DELETE FROM jobs WHERE order_id = ? AND kind = ?', [orderId, kind]);
  }

  async licenceOf(orderId: string) {
    const r = await this.get('SELECT data, sig FROM licences WHERE order_id = ?', [orderId]);
    return r && { data: r.data as string, sig: r.sig as string };
  }
  async saveLicence(orderId: string, licence: { data: string; sig: string }, issuedAt: number) {
    const inserted = await this.run(
      'INSERT INTO licences (order_id, data, sig, issued_at) VALUES (?,?,?,?) ON CONFLICT(order_id) DO NOTHING',
      [orderId, licence.data, licence.sig, issuedAt],
    );
    return inserted === 1 ? licence : ((await this.licenceOf(orderId)) ?? licence);
  }
}

const CHANNELS: ClusterChannel[] = ['jobs', 'order', 'terminal'];

/** LISTEN/NOTIFY between instances. A lost listening connection is re-opened, then jobs are looked at. */
export class PgCluster implements Cluster {
  private readonly listeners = new Listeners();
  private listener: pg.Client | undefined;
  private readonly notifier: pg.Pool;
  private closed = false;

  private constructor(
    private readonly url: string,
    readonly instanceId: string,
  ) {
    this.notifier = new pg.Pool({ connectionString: url, max: 2 });
    this.notifier.on('error', (err) => log('warn', 'postgres-idle-client-error', { error: err.message }));
  }

  static async open(url: string, instanceId: string): Promise<PgCluster> {
    const c = new PgCluster(url, instanceId);
    await c.listen();
    return c;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('notification', (n) => {
      const channel = n.channel.replace(/^rd_/, '') as ClusterChannel;
      if (CHANNELS.includes(channel)) this.listeners.deliver(channel, n.payload ?? '');
    });
    client.on('error', (err) => {
      log('warn', 'cluster-listener-lost', { error: err.message });
      void client.end().catch(() => undefined);
      if (this.listener === client) this.listener = undefined;
      if (!this.closed) setTimeout(() => void this.relisten(), 1000).unref();
    });
    await client.connect();
    for (const ch of CHANNELS) await client.query(`LISTEN rd_${ch}`);
    this.listener = client;
  }

  private async relisten(): Promise<void> {
    try {
      await this.listen();
      // Whatever was announced while deaf is in the tables: look again.
      this.listeners.deliver('jobs', '');
    } catch {
      if (!this.closed) setTimeout(() => void this.relisten(), 2000).unref();
    }
  }

  publish(channel: ClusterChannel, payload: string): void {
    // Work finishing during shutdown has no one left to tell (the instances read the tables anyway).
    if (this.closed) return;
    this.notifier
      .query('SELECT pg_notify($1, $2)', [`rd_${channel}`, payload])
      .catch((err) => log('warn', 'cluster-notify-failed', { channel, error: String(err) }));
  }

  on(channel: ClusterChannel, fn: (payload: string) => void): void {
    this.listeners.on(channel, fn);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listener?.end().catch(() => undefined);
    await this.notifier.end();
  }
}
