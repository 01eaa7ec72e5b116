/** SQLite (better-sqlite3, WAL) implementation of the repository: the embedded default. */
import { closeSync, fdatasync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ChurnMap } from '../../shared/churn-map.ts';
import type { Classification } from '../../shared/classification.ts';
import { BoundedCache } from '../bounded-cache.ts';
import { log } from '../log.ts';
import { migrationsFor } from './migrations.ts';
import {
  type AdRow,
  type CatalogRow,
  type CustomerRow,
  INSTANCE_LIVE_MS,
  type JobKind,
  type JobRow,
  type JobState,
  type NamedOrder,
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
import { WAL_RESTART_BYTES, WalCheckpointer } from './wal-checkpointer.ts';

/**
 * How long the first write of a transaction waits for others to share its commit. Measured at 1,000
 * orders/s: a commit at the end of each turn of the event loop (about one per order) cost the server 0.87 ms
 * of CPU per order; 3 ms windows cost 0.74 ms and the terminals 10 % less (their messages arrive
 * together), for 3 ms more before an order or a licence is acknowledged.
 */
export const COMMIT_WINDOW_MS = 3;
/** Orders remembered as not yet licensed (see `unlicensed`): a bound, as for the caches. */
const UNLICENSED_KEPT = 20_000;

export class SqliteRepository implements Repository {
  private readonly db: Database.Database;
  readonly shared = false;
  readonly readsOwnWritesEarly = true;

  /**
   * @param syncFile how the write-ahead log is flushed to disk (fs.fdatasync; tests hold it to see
   *   that nothing is acknowledged before its flush).
   * @param wal the checkpoints' interval and the log's restart size (wal-checkpointer.ts; tests make
   *   them small).
   */
  constructor(
    private readonly file: string,
    private readonly syncFile: (fd: number, done: (err: Error | null) => void) => void = fdatasync,
    private readonly wal: { checkpointEveryMs?: number; restartBytes?: number } = {},
  ) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: every commit survives a crash of the process (kill -9); the WAL is synced
    // at checkpoints. Orders and licences, the writes a customer or terminal relies on, also survive
    // power loss: they are acknowledged only after the WAL holding their commit is flushed to disk
    // (see durableSoon). Progress and job states can be re-derived, so losing their last moments to
    // a power cut only repeats work.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    // 64 MiB of page cache (the default is 2 MiB): a busy server's orders and jobs outgrow 2 MiB
    // within minutes, and every miss is a read from the file.
    this.db.pragma('cache_size = -65536');
    // Every durable write is a savepoint inside the window's transaction, and a savepoint keeps the
    // pages it changes in a statement journal; in memory, not a temporary file, that cost 53 µs per
    // order's inserts instead of 76 µs (a lab run on this schema). It holds at most one write's pages.
    this.db.pragma('temp_store = MEMORY');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.startCheckpoints();
  }

  /** Checkpoints run on a worker thread (see wal-checkpointer.ts); SQLite's own is the fallback. */
  private checkpointer: WalCheckpointer | undefined;
  private startCheckpoints() {
    if (this.db.memory) return;
    this.db.pragma('wal_autocheckpoint = 0');
    const restartBytes = this.wal.restartBytes ?? WAL_RESTART_BYTES;
    // A log that grew past the restart size (catching up failed for a while) is cut back when it restarts.
    this.db.pragma(`journal_size_limit = ${Math.floor(restartBytes)}`);
    this.checkpointer = new WalCheckpointer(
      this.file,
      (error) => {
        log('error', 'wal-checkpoint-failed', { error });
        if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
      },
      this.wal.checkpointEveryMs,
      restartBytes,
    );
  }
  /**
   * Between two commits, when the worker found the log at its restart size: copy the frames its last
   * checkpoint left (those committed while it ran) here, so the next transaction begins with nothing
   * left to copy and SQLite writes its commit at the log's start (see wal-checkpointer.ts). Busy (the
   * worker is checkpointing) is no error: the worker's next report tries again.
   */
  private catchUp(): void {
    if (this.db.inTransaction) return;
    const frames = this.checkpointer?.takeRestart();
    if (frames === undefined) return;
    const started = performance.now();
    try {
      const [done] = this.db.pragma('wal_checkpoint(PASSIVE)') as { busy: number }[];
      log('info', 'wal-restart', {
        frames,
        caughtUp: done?.busy === 0,
        ms: Math.round(performance.now() - started),
      });
    } catch (err) {
      log('warn', 'wal-restart-failed', { error: String(err) });
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    const migrations = migrationsFor('sqlite');
    for (let v = version; v < migrations.length; v++) {
      this.db.transaction(() => {
        this.db.exec(migrations[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /**
   * Group commit, one transaction per commit window. Every write made within COMMIT_WINDOW_MS of the
   * first, durable or not, goes into one transaction that commits when the window ends (or earlier,
   * when a write that must stand alone comes: see run). One commit writes each changed page to the
   * WAL once, however many writes of the window changed it; a busy server makes a dozen writes per
   * order, and writing their pages cost more than the writes (see COMMIT_WINDOW_MS).
   *
   * Durable writes (orders, licences) are acknowledged when a flush of the WAL that began after their
   * commit has finished. The flush runs on libuv's thread pool, so the event loop keeps serving while
   * the disk works, and every write committed meanwhile shares the next flush. This is as durable as
   * synchronous = FULL (which flushes the WAL inside every commit): a committed frame is either still
   * in the WAL, flushed here, or checkpointed into the database file, which is synced before the WAL
   * is reused (wal-checkpointer.ts). Each durable write runs in a savepoint, so a bad one fails alone.
   *
   * Writes that can be re-derived (delivery progress, key and job states, finished jobs) are not
   * waited for: a crash loses at most that window's share, which only repeats work
   * (a job runs again; a terminal resumes from what it stored).
   */
  private windowOpen = false;
  /** The durable writes of the open window, acknowledged after its commit and a flush. */
  private windowDurable: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private openWindow(): void {
    if (this.windowOpen) return;
    this.db.exec('BEGIN');
    this.windowOpen = true;
    setTimeout(() => this.settle(), COMMIT_WINDOW_MS);
  }
  /** SQLite rolls a whole transaction back on some errors (a full disk): the window's writes are gone. */
  private afterWriteError(err: unknown): void {
    if (!this.windowOpen || this.db.inTransaction) return;
    this.windowOpen = false;
    this.forgetCopies(); // they may hold writes that are gone
    const lost = this.windowDurable;
    this.windowDurable = [];
    for (const op of lost) op.reject(err);
  }
  /**
   * @param oneStatement fn runs one write (reads aside), which SQLite undoes alone if it fails: it
   *   needs no savepoint of its own (two statements fewer).
   */
  private durableSoon(fn: () => void, oneStatement = false): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.openWindow();
        if (oneStatement) fn();
        else this.atomically(fn); // inside the window's transaction: a savepoint
      } catch (err) {
        this.afterWriteError(err);
        return reject(err);
      }
      this.windowDurable.push({ resolve, reject });
    });
  }
  /** Commit the window's transaction now, and start the flush its durable writes wait for. */
  private settle(): void {
    if (!this.windowOpen) return;
    this.windowOpen = false;
    const ops = this.windowDurable;
    this.windowDurable = [];
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      log('error', 'commit-failed', { error: String(err) });
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.forgetCopies(); // they may hold writes that are gone
      for (const op of ops) op.reject(err);
      return;
    }
    if (ops.length > 0) this.afterWalFlush(ops);
    this.catchUp();
  }

  /** The WAL, open for flushing; undefined until the first durable write, null if there is none. */
  private walFd: number | null | undefined;
  /** Writes waiting for the next flush, and whether one is running. */
  private unflushed: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private afterWalFlush(ops: { resolve: () => void; reject: (e: unknown) => void }[]) {
    if (this.walFd === undefined) {
      try {
        this.walFd = openSync(`${this.file}-wal`, 'r+');
      } catch {
        this.walFd = null; // an in-memory database has no WAL to flush
      }
    }
    if (this.walFd === null) {
      // No WAL file to flush on its own: a checkpoint syncs the WAL and then the database file.
      try {
        this.db.pragma('wal_checkpoint(FULL)');
        for (const op of ops) op.resolve();
      } catch (err) {
        for (const op of ops) op.reject(err);
      }
      return;
    }
    this.unflushed.push(...ops);
    if (!this.flushing) this.flushing = this.flushWal(this.walFd);
  }
  private async flushWal(fd: number): Promise<void> {
    while (this.unflushed.length > 0) {
      const ops = this.unflushed;
      this.unflushed = [];
      const err = await new Promise<Error | null>((r) => this.syncFile(fd, r));
      for (const op of ops) err ? op.reject(err) : op.resolve();
    }
    this.flushing = undefined;
  }

  /** Prepared statements, compiled once per SQL text. */
  private readonly statements = new Map<string, Database.Statement>();
  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }
  /**
   * Runs `fn` all or nothing: in a transaction of its own, or in a savepoint inside the open one.
   * One better-sqlite3 transaction function, made once and given `fn` each time. Making one per call
   * (`db.transaction(fn)`) built four wrappers and defined twenty properties on them: 10-11 µs a
   * savepoint against 2.3-2.8 (a lab loop), and about 4 KB of garbage each: one an order, its inserts.
   */
  private atomicallyOnce: (<U>(f: () => U) => U) | undefined;
  private atomically<T>(fn: () => T): T {
    this.atomicallyOnce ??= this.db.transaction(<U>(f: () => U): U => f()) as <U>(f: () => U) => U;
    return this.atomicallyOnce(fn);
  }
  /** A transaction of its own: the window's writes commit first, so they cannot be rolled back with it. */
  private tx<T>(fn: () => T): T {
    this.settle();
    return this.atomically(fn);
  }
  /** A re-derivable write, in the window's transaction (see openWindow). */
  private deferred(sql: string, ...args: unknown[]): void {
    try {
      this.openWindow();
      this.write(sql, ...args);
    } catch (err) {
      this.afterWriteError(err);
      throw err;
    }
  }

  private get(sql: string, ...args: unknown[]): Row | undefined {
    return this.stmt(sql).get(...args) as Row | undefined;
  }
  private all(sql: string, ...args: unknown[]): Row[] {
    return this.stmt(sql).all(...args) as Row[];
  }
  /** A write that stands alone: the window's transaction commits first. */
  private run(sql: string, ...args: unknown[]): Database.RunResult {
    this.settle();
    return this.write(sql, ...args);
  }
  /** A write inside whatever transaction is open. */
  private write(sql: string, ...args: unknown[]): Database.RunResult {
    return this.stmt(sql).run(...args);
  }

  async close() {
    // A flush in flight holds the WAL's descriptor; let it finish before closing it.
    this.settle();
    await this.flushing;
    await this.checkpointer?.stop();
    if (typeof this.walFd === 'number') closeSync(this.walFd);
    this.walFd = undefined;
    this.db.close();
  }

  async createCustomer(c: CustomerRow) {
    const r = this.run(INSERT_CUSTOMER, ...customerParams(c));
    return r.changes === 1;
  }
  async customerByEmail(email: string) {
    const r = this.get('SELECT * FROM customers WHERE email = ?', email);
    return r && customerOf(r);
  }
  async customerById(id: string) {
    const r = this.get('SELECT * FROM customers WHERE id = ?', id);
    return r && customerOf(r);
  }

  async createSession(tokenHash: string, customerId: string, createdAt: number, expiresAt: number) {
    this.run(
      'INSERT INTO sessions (token_hash, customer_id, created_at, expires_at) VALUES (?,?,?,?)',
      tokenHash,
      customerId,
      createdAt,
      expiresAt,
    );
  }
  async sessionCustomer(tokenHash: string, now: number) {
    const r = this.get(
      'SELECT customer_id FROM sessions WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?',
      tokenHash,
      now,
    );
    return r?.customer_id as string | undefined;
  }
  async revokeSession(tokenHash: string, now: number) {
    this.run(
      'UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL',
      now,
      tokenHash,
    );
  }

  async upsertTerminal(t: Omit<TerminalRow, 'customerId' | 'linkedAt' | 'lastSeenAt' | 'online'>) {
    this.run(UPSERT_TERMINAL, t.id, Buffer.from(t.signPublicKey), t.kind, t.name, t.createdAt);
    return (await this.terminalById(t.id)) as TerminalRow;
  }
  async terminalById(id: string) {
    const r = this.get(`${TERMINAL_SELECT} WHERE t.id = ?`, Date.now() - INSTANCE_LIVE_MS, id);
    return r && terminalOf(r);
  }
  async terminalsOfCustomer(customerId: string) {
    return this.all(
      `${TERMINAL_SELECT} WHERE t.customer_id = ? ORDER BY t.linked_at`,
      Date.now() - INSTANCE_LIVE_MS,
      customerId,
    ).map(terminalOf);
  }

  async beat(instanceId: string, role: string, now: number) {
    this.run(INSERT_INSTANCE, instanceId, role, now, now);
  }
  async setPresence(terminalId: string, instanceId: string, online: boolean, now: number) {
    if (online) this.run(UPSERT_PRESENCE, terminalId, instanceId, now);
    else
      this.run(
        'DELETE FROM terminal_presence WHERE terminal_id = ? AND instance_id = ?',
        terminalId,
        instanceId,
      );
  }
  async clearPresence() {
    this.run('DELETE FROM terminal_presence');
  }
  async linkTerminal(terminalId: string, customerId: string, name: string, now: number) {
    this.terminalNames.delete(terminalId);
    this.run(
      'UPDATE terminals SET customer_id = ?, name = ?, linked_at = ? WHERE id = ?',
      customerId,
      name,
      now,
      terminalId,
    );
  }
  async renameTerminal(terminalId: string, name: string) {
    this.terminalNames.delete(terminalId);
    this.run('UPDATE terminals SET name = ? WHERE id = ?', name, terminalId);
  }
  async unlinkTerminal(terminalId: string) {
    this.run('UPDATE terminals SET customer_id = NULL, linked_at = NULL WHERE id = ?', terminalId);
  }
  async touchTerminal(terminalId: string, now: number) {
    this.run('UPDATE terminals SET last_seen_at = ? WHERE id = ?', now, terminalId);
  }

  async setPairingCode(terminalId: string, code: string, expiresAt: number) {
    this.tx(() => {
      this.run('DELETE FROM pairing_codes WHERE terminal_id = ?', terminalId);
      this.run(
        'INSERT INTO pairing_codes (code, terminal_id, expires_at) VALUES (?,?,?)',
        code,
        terminalId,
        expiresAt,
      );
    });
  }
  async pairingCodeOf(terminalId: string, now: number) {
    const r = this.get(
      'SELECT code, expires_at FROM pairing_codes WHERE terminal_id = ? AND expires_at > ?',
      terminalId,
      now,
    );
    return r && { code: r.code as string, expiresAt: r.expires_at as number };
  }
  async takePairingCode(code: string, now: number) {
    return this.tx(() => {
      const r = this.get('SELECT terminal_id, expires_at FROM pairing_codes WHERE code = ?', code);
      if (!r) return undefined;
      this.run('DELETE FROM pairing_codes WHERE code = ?', code);
      return (r.expires_at as number) > now ? (r.terminal_id as string) : undefined;
    });
  }

  async upsertCatalogItem(c: CatalogRow) {
    this.catalogItems.delete(c.itemNumber);
    this.run(UPSERT_CATALOG, ...catalogParams(c));
  }
  async setCatalogPreroll(itemNumber: number, on: boolean) {
    this.catalogItems.delete(itemNumber);
    return (
      this.run('UPDATE catalog SET preroll = ? WHERE item_number = ?', on ? 1 : 0, itemNumber).changes > 0
    );
  }
  async setCustomerRole(email: string, role: CustomerRow['role']) {
    return this.run('UPDATE customers SET role = ? WHERE email = ?', role, email).changes > 0;
  }
  async catalog() {
    return this.all('SELECT * FROM catalog ORDER BY item_number').map(catalogOf);
  }
  /** Catalog items, read for every order; the CLI may change one meanwhile, so kept for 2 s. */
  private readonly catalogItems = new BoundedCache<number, CatalogRow>(1_000, 2_000);
  async catalogItem(itemNumber: number) {
    const cached = this.catalogItems.get(itemNumber);
    if (cached) return { ...cached };
    const r = this.get('SELECT * FROM catalog WHERE item_number = ?', itemNumber);
    if (!r) return undefined;
    const item = catalogOf(r);
    this.catalogItems.set(itemNumber, item);
    return { ...item };
  }

  async createOrder(o: OrderRow, jobs: JobRow[], c: Classification) {
    await this.durableSoon(() => {
      this.insertOrder(o, jobs);
      this.write(INSERT_CLASSIFICATION, ...classificationParams(o, c));
      this.orderRows.set(o.id, { ...o });
      if (this.unlicensed.size < UNLICENSED_KEPT) this.unlicensed.set(o.id, true);
      this.noteRecentOrder(o);
    });
  }
  async classifications(since: number) {
    return this.all('SELECT * FROM classifications WHERE created_at >= ? ORDER BY created_at', since).map(
      classificationOf,
    );
  }
  async addAd(a: AdRow) {
    this.liveAds.clear();
    this.run(INSERT_AD, ...adParams(a));
  }
  /**
   * The ads on air, read twice for every order (its pre-roll, the ad pushed after its licence); the
   * CLI may add or remove one meanwhile, so kept for 2 s, as catalog items are.
   */
  private readonly liveAds = new BoundedCache<true, AdRow[]>(1, 2_000);
  async ads(includeRemoved = false) {
    const cached = includeRemoved ? undefined : this.liveAds.get(true);
    if (cached) return cached.map((a) => ({ ...a }));
    const ads = this.all(
      `SELECT * FROM ads ${includeRemoved ? '' : 'WHERE removed_at IS NULL'} ORDER BY created_at`,
    ).map(adOf);
    if (!includeRemoved)
      this.liveAds.set(
        true,
        ads.map((a) => ({ ...a })),
      );
    return ads;
  }
  async recordImpression(i: {
    impressionId: string;
    adId: string;
    terminalId: string;
    shownAt: number;
    completed: boolean;
  }) {
    return this.run(INSERT_IMPRESSION, ...impressionParams(i)).changes === 1;
  }
  /** Impressions with the segments of the customer whose terminal showed them. */
  async impressionRows(since: number) {
    return this.all(IMPRESSION_ROWS, since).map(impressionOf);
  }
  async impressionCounts() {
    return this.all(
      'SELECT ad_id, COUNT(*) AS shown, SUM(completed) AS completed FROM impressions GROUP BY ad_id',
    ).map((r) => ({ adId: r.ad_id as string, shown: r.shown as number, completed: r.completed as number }));
  }
  async removeAd(adId: string, now: number) {
    this.liveAds.clear();
    return (
      this.run('UPDATE ads SET removed_at = ? WHERE id = ? AND removed_at IS NULL', now, adId).changes === 1
    );
  }
  async latestClassification(customerId: string) {
    const r = this.get(LATEST_CLASSIFICATION, customerId);
    return r && segmentsOf(classificationOf(r));
  }

  private insertOrder(o: OrderRow, jobs: JobRow[]) {
    this.write(INSERT_ORDER, ...orderParams(o));
    // An order's jobs in one statement: each statement run is a call into SQLite, and its fixed
    // cost was about the cost of a row.
    if (jobs.length > 0)
      this.write(`${INSERT_JOB}${',(?,?,?,?,?,?)'.repeat(jobs.length - 1)}`, ...jobs.flatMap(jobParams));
  }
  /**
   * Orders as stored, kept as they are written: the queue, the acknowledgements and the customer's
   * updates read an order a dozen times in its first seconds. Only this process writes orders (the
   * CLI never does), so the copy is exact; a failed commit empties it.
   */
  private readonly orderRows = new BoundedCache<string, OrderRow>(20_000);
  private forgetCopies() {
    this.orderRows.clear();
    this.unlicensed.drain();
    this.recentOrders.clear();
  }
  /** Terminal names for customers' order updates (titles come from the catalog items kept above). */
  private readonly terminalNames = new BoundedCache<string, string | null>(20_000, 2_000);

  async orderById(id: string) {
    const cached = this.orderRows.get(id);
    if (cached) return { ...cached };
    const r = this.get('SELECT * FROM orders WHERE id = ?', id);
    if (!r) return undefined;
    const o = orderOf(r);
    this.orderRows.set(id, o);
    return { ...o };
  }
  async namedOrder(id: string): Promise<NamedOrder | undefined> {
    const o = await this.orderById(id);
    if (!o) return undefined;
    const title = (await this.catalogItem(o.itemNumber))?.title ?? null;
    // Names first: added after the spread, they made a hidden class per order (BENCHMARKS.md).
    return { title, terminalName: this.terminalName(o.terminalId), ...o };
  }
  private terminalName(terminalId: string): string | null {
    let name = this.terminalNames.get(terminalId);
    if (name === undefined) {
      name =
        (this.get('SELECT name FROM terminals WHERE id = ?', terminalId)?.name as string | undefined) ?? null;
      this.terminalNames.set(terminalId, name);
    }
    return name;
  }
  async ordersOfCustomer(customerId: string) {
    return this.all(
      `${NAMED_ORDER_SELECT} WHERE o.customer_id = ? ORDER BY o.created_at DESC`,
      customerId,
    ).map(namedOrderOf);
  }
  /**
   * Each customer's recent orders' creation times, oldest first, from `from` on: the rate limit asks
   * for every order, and counting them in the index cost time in proportion to the orders of the
   * last minute (50 µs an order, 7 % of the server, late in a bench run with the limit lifted).
   * Kept as orders are written (only this process writes them, as for `orderRows`); loaded from the
   * table the first time a customer is asked about, or when asked about an earlier time.
   */
  private readonly recentOrders = new BoundedCache<string, { from: number; times: number[] }>(20_000);
  async countRecentOrders(customerId: string, since: number) {
    let recent = this.recentOrders.get(customerId);
    if (!recent || since < recent.from) {
      const times = this.all(
        'SELECT created_at FROM orders WHERE customer_id = ? AND created_at >= ? ORDER BY created_at',
        customerId,
        since,
      ).map((r) => r.created_at as number);
      recent = { from: since, times };
      this.recentOrders.set(customerId, recent);
    }
    let gone = 0;
    while (gone < recent.times.length && (recent.times[gone] as number) < since) gone++;
    if (gone > 0) recent.times.splice(0, gone);
    recent.from = since;
    return recent.times.length;
  }
  /** An order just written joins its customer's recent orders, if they are kept. */
  private noteRecentOrder(o: OrderRow) {
    const recent = this.recentOrders.get(o.customerId);
    if (!recent || o.createdAt < recent.from) return;
    let at = recent.times.length; // orders are written in about the order they were made
    while (at > 0 && (recent.times[at - 1] as number) > o.createdAt) at--;
    recent.times.splice(at, 0, o.createdAt);
  }
  async setContentProgress(orderId: string, state: OrderRow['contentState'], chunksDelivered: number) {
    const o = this.orderRows.get(orderId);
    if (o && o.contentState !== 'delivered') Object.assign(o, { contentState: state, chunksDelivered });
    this.deferred(
      "UPDATE orders SET content_state = ?, chunks_delivered = ? WHERE id = ? AND content_state <> 'delivered'",
      state,
      chunksDelivered,
      orderId,
    );
  }
  async setKeyState(orderId: string, state: OrderRow['keyState']) {
    const o = this.orderRows.get(orderId);
    if (o) o.keyState = state;
    this.deferred('UPDATE orders SET key_state = ? WHERE id = ?', state, orderId);
  }
  async wipeOrderKey(orderId: string) {
    const o = this.orderRows.get(orderId);
    if (o) o.wrappedKey = null;
    this.run('UPDATE orders SET wrapped_key = NULL WHERE id = ?', orderId);
  }

  async pendingJobs() {
    return this.all('SELECT * FROM jobs ORDER BY run_at').map(jobOf);
  }
  async dueJobs(now: number, limit: number, instanceId: string, contentAnywhere: boolean) {
    // One writer: reading and marking in one transaction is enough to take each job once. A
    // transaction of its own, so another handle on the file (another process) can take jobs as well.
    return this.tx(() => {
      // With no other live instance on this file (the usual case: SQLite is one instance's), no
      // terminal can be held elsewhere, and the per-job presence check (most of the query's cost,
      // paid on every look at the queue) is left out.
      const alone = !this.get(
        'SELECT 1 FROM instances WHERE id <> ? AND beat_at > ? LIMIT 1',
        instanceId,
        now - INSTANCE_LIVE_MS,
      );
      const jobs = (
        alone
          ? this.all(
              "SELECT j.* FROM jobs j WHERE j.state = 'pending' AND j.run_at <= ? ORDER BY j.run_at LIMIT ?",
              now,
              limit,
            )
          : this.all(
              `SELECT j.* FROM jobs j WHERE ${DUE_JOBS_WHERE} ORDER BY j.run_at LIMIT ?`,
              now,
              contentAnywhere ? 1 : 0,
              now - INSTANCE_LIVE_MS,
              instanceId,
              limit,
            )
      ).map(jobOf);
      for (const j of jobs)
        this.write(
          "UPDATE jobs SET state = 'claimed', claimed_by = ? WHERE order_id = ? AND kind = ?",
          instanceId,
          j.orderId,
          j.kind,
        );
      return jobs;
    });
  }
  async recoverJobs(now: number) {
    return this.run(RECOVER_JOBS, now - INSTANCE_LIVE_MS).changes;
  }
  async nextJobAt(after: number) {
    const r = this.get(NEXT_JOB_AT, after);
    return (r?.t as number | null) ?? undefined;
  }
  async setJobState(orderId: string, kind: JobKind, state: JobState) {
    this.deferred('UPDATE jobs SET state = ? WHERE order_id = ? AND kind = ?', state, orderId, kind);
  }
  async wakeTerminalJobs(terminalId: string) {
    return this.run(WAKE_TERMINAL_JOBS, terminalId).changes;
  }
  async resetJobStates() {
    this.run(RESET_JOB_STATES);
  }
  async completeJob(orderId: string, kind: JobKind) {
    this.deferred('DELETE FROM jobs WHERE order_id = ? AND kind = ?', orderId, kind);
  }

  /**
   * Orders this process stored and has issued no licence for: asking the table for their licence
   * (once per order, before it is issued) finds none. A licence stored by another handle meanwhile
   * still wins: saveLicence keeps the first. Most leave within milliseconds, so a ChurnMap (see
   * there): in a Map, they kept the Map's outgrown tables alive. Orders licensed later (a rental that
   * starts tomorrow) stay; beyond UNLICENSED_KEPT of them, the table is asked.
   */
  private readonly unlicensed = new ChurnMap<string, true>();
  async licenceOf(orderId: string) {
    if (this.unlicensed.has(orderId)) return undefined;
    return this.storedLicence(orderId);
  }
  private storedLicence(orderId: string) {
    const r = this.get('SELECT data, sig FROM licences WHERE order_id = ?', orderId);
    return r && { data: r.data as string, sig: r.sig as string };
  }
  async saveLicence(orderId: string, licence: { data: string; sig: string }, issuedAt: number) {
    this.unlicensed.delete(orderId);
    let stored = licence;
    await this.durableSoon(() => {
      const inserted = this.write(
        'INSERT INTO licences (order_id, data, sig, issued_at) VALUES (?,?,?,?) ON CONFLICT(order_id) DO NOTHING',
        orderId,
        licence.data,
        licence.sig,
        issuedAt,
      ).changes;
      // Read back only when another handle stored one first (then it is the one to send).
      if (inserted === 0) stored = this.storedLicence(orderId) ?? licence;
    }, true);
    return stored;
  }
}
