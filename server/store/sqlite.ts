/** SQLite (better-sqlite3, WAL) implementation of the repository: the embedded default. */
import Database from 'better-sqlite3';
import type { Classification } from '../../shared/classification.ts';
import type {
  AdRow,
  CatalogRow,
  ClassificationRow,
  CustomerRow,
  JobKind,
  JobRow,
  JobState,
  OrderRow,
  Repository,
  TerminalRow,
} from './repository.ts';

/** Numbered, append-only migrations. Never edit one that has shipped; add the next. */
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
];

type Row = Record<string, unknown>;

const customerOf = (r: Row): CustomerRow => ({
  id: r.id as string,
  email: r.email as string,
  name: r.name as string,
  ageBand: (r.age_band as CustomerRow['ageBand']) ?? null,
  region: (r.region as CustomerRow['region']) ?? null,
  passwordHash: r.password_hash as string,
  createdAt: r.created_at as number,
  role: r.role === 'admin' ? 'admin' : 'customer',
});

const terminalOf = (r: Row): TerminalRow => ({
  id: r.id as string,
  signPublicKey: new Uint8Array(r.sign_public_key as Buffer),
  kind: r.kind as TerminalRow['kind'],
  name: r.name as string,
  customerId: (r.customer_id as string | null) ?? null,
  linkedAt: (r.linked_at as number | null) ?? null,
  createdAt: r.created_at as number,
  lastSeenAt: (r.last_seen_at as number | null) ?? null,
});

const catalogOf = (r: Row): CatalogRow => ({
  itemNumber: r.item_number as number,
  title: r.title as string,
  genre: r.genre as string,
  year: (r.year as number | null) ?? null,
  synopsis: r.synopsis as string,
  durationSeconds: r.duration_s as number,
  priceCents: r.price_cents as number,
  posterFile: (r.poster_file as string | null) ?? null,
  mediaFile: r.media_file as string,
  mimeType: r.mime_type as string,
  size: r.size as number,
  sha256: r.sha256 as string,
  createdAt: r.created_at as number,
  preroll: r.preroll !== 0,
});

const orderOf = (r: Row): OrderRow => ({
  id: r.id as string,
  customerId: r.customer_id as string,
  itemNumber: r.item_number as number,
  terminalId: r.terminal_id as string,
  periodSeconds: r.period_s as number,
  contentAt: r.content_at as number,
  keyAt: r.key_at as number,
  notBefore: r.not_before as number,
  notAfter: r.not_after as number,
  wrappedKey: r.wrapped_key ? new Uint8Array(r.wrapped_key as Buffer) : null,
  contentState: r.content_state as OrderRow['contentState'],
  keyState: r.key_state as OrderRow['keyState'],
  chunksDelivered: r.chunks_delivered as number,
  totalChunks: r.total_chunks as number,
  size: r.size as number,
  chunkSize: r.chunk_size as number,
  priceCents: r.price_cents as number,
  createdAt: r.created_at as number,
});

const classificationOf = (r: Row): ClassificationRow => ({
  orderId: r.order_id as string,
  customerId: r.customer_id as string,
  itemNumber: r.item_number as number,
  createdAt: r.created_at as number,
  genre: r.genre as string,
  ageBand: r.age_band as ClassificationRow['ageBand'],
  region: r.region as ClassificationRow['region'],
  dayPart: r.day_part as ClassificationRow['dayPart'],
  lengthBand: r.length_band as ClassificationRow['lengthBand'],
  terminalType: r.terminal_type as ClassificationRow['terminalType'],
});

const jobOf = (r: Row): JobRow => ({
  orderId: r.order_id as string,
  kind: r.kind as JobKind,
  runAt: r.run_at as number,
  terminalId: r.terminal_id as string,
});

export class SqliteRepository implements Repository {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: every commit survives a crash of the process (kill -9); the WAL is synced
    // at checkpoints. Orders and licences, the writes a customer or terminal relies on, are committed
    // with FULL (see durable()), so they survive power loss too. Progress and job states can be
    // re-derived, so losing their last moments to a power cut only repeats work.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** Run a transaction whose commit is synced to disk before it returns (synchronous = FULL). */
  private durable<T>(fn: () => T): T {
    this.db.pragma('synchronous = FULL');
    try {
      return this.db.transaction(fn)();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  /**
   * Group commit: durable writes arriving in the same turn of the event loop share one synced
   * transaction (one fsync for many orders). If the batch fails, each write is retried alone so
   * one bad write cannot fail the others.
   */
  private batch: { fn: () => void; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private durableSoon(fn: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.batch.push({ fn, resolve, reject });
      if (this.batch.length === 1) setImmediate(() => this.flushBatch());
    });
  }
  private flushBatch() {
    const batch = this.batch;
    this.batch = [];
    try {
      this.durable(() => {
        for (const op of batch) op.fn();
      });
      for (const op of batch) op.resolve();
    } catch {
      for (const op of batch) {
        try {
          this.durable(op.fn);
          op.resolve();
        } catch (err) {
          op.reject(err);
        }
      }
    }
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
  private get(sql: string, ...args: unknown[]): Row | undefined {
    return this.stmt(sql).get(...args) as Row | undefined;
  }
  private all(sql: string, ...args: unknown[]): Row[] {
    return this.stmt(sql).all(...args) as Row[];
  }
  private run(sql: string, ...args: unknown[]): Database.RunResult {
    return this.stmt(sql).run(...args);
  }

  async close() {
    this.db.close();
  }

  async createCustomer(c: CustomerRow) {
    const r = this.run(
      'INSERT INTO customers (id, email, name, password_hash, created_at, age_band, region, role) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(email) DO NOTHING',
      c.id,
      c.email,
      c.name,
      c.passwordHash,
      c.createdAt,
      c.ageBand,
      c.region,
      c.role,
    );
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

  async upsertTerminal(t: Omit<TerminalRow, 'customerId' | 'linkedAt' | 'lastSeenAt'>) {
    this.run(
      `INSERT INTO terminals (id, sign_public_key, kind, name, created_at) VALUES (?,?,?,?,?)
       ON CONFLICT(id) DO UPDATE SET kind = excluded.kind`,
      t.id,
      Buffer.from(t.signPublicKey),
      t.kind,
      t.name,
      t.createdAt,
    );
    return terminalOf(this.get('SELECT * FROM terminals WHERE id = ?', t.id) as Row);
  }
  async terminalById(id: string) {
    const r = this.get('SELECT * FROM terminals WHERE id = ?', id);
    return r && terminalOf(r);
  }
  async terminalsOfCustomer(customerId: string) {
    return this.all('SELECT * FROM terminals WHERE customer_id = ? ORDER BY linked_at', customerId).map(
      terminalOf,
    );
  }
  async linkTerminal(terminalId: string, customerId: string, name: string, now: number) {
    this.run(
      'UPDATE terminals SET customer_id = ?, name = ?, linked_at = ? WHERE id = ?',
      customerId,
      name,
      now,
      terminalId,
    );
  }
  async renameTerminal(terminalId: string, name: string) {
    this.run('UPDATE terminals SET name = ? WHERE id = ?', name, terminalId);
  }
  async unlinkTerminal(terminalId: string) {
    this.run('UPDATE terminals SET customer_id = NULL, linked_at = NULL WHERE id = ?', terminalId);
  }
  async touchTerminal(terminalId: string, now: number) {
    this.run('UPDATE terminals SET last_seen_at = ? WHERE id = ?', now, terminalId);
  }

  async setPairingCode(terminalId: string, code: string, expiresAt: number) {
    this.db.transaction(() => {
      this.run('DELETE FROM pairing_codes WHERE terminal_id = ?', terminalId);
      this.run(
        'INSERT INTO pairing_codes (code, terminal_id, expires_at) VALUES (?,?,?)',
        code,
        terminalId,
        expiresAt,
      );
    })();
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
    return this.db.transaction(() => {
      const r = this.get('SELECT terminal_id, expires_at FROM pairing_codes WHERE code = ?', code);
      if (!r) return undefined;
      this.run('DELETE FROM pairing_codes WHERE code = ?', code);
      return (r.expires_at as number) > now ? (r.terminal_id as string) : undefined;
    })();
  }

  async upsertCatalogItem(c: CatalogRow) {
    this.run(
      `INSERT INTO catalog (item_number, title, genre, year, synopsis, duration_s, price_cents, poster_file,
         media_file, mime_type, size, sha256, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
       ON CONFLICT(item_number) DO UPDATE SET title=excluded.title, genre=excluded.genre, year=excluded.year,
         synopsis=excluded.synopsis, duration_s=excluded.duration_s, price_cents=excluded.price_cents,
         poster_file=excluded.poster_file, media_file=excluded.media_file, mime_type=excluded.mime_type,
         size=excluded.size, sha256=excluded.sha256`,
      c.itemNumber,
      c.title,
      c.genre,
      c.year,
      c.synopsis,
      c.durationSeconds,
      c.priceCents,
      c.posterFile,
      c.mediaFile,
      c.mimeType,
      c.size,
      c.sha256,
      c.createdAt,
    );
  }
  async setCatalogPreroll(itemNumber: number, on: boolean) {
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
  async catalogItem(itemNumber: number) {
    const r = this.get('SELECT * FROM catalog WHERE item_number = ?', itemNumber);
    return r && catalogOf(r);
  }

  async createOrder(o: OrderRow, jobs: JobRow[], c: Classification) {
    await this.durableSoon(() => {
      this.insertOrder(o, jobs);
      this.run(
        `INSERT INTO classifications (order_id, customer_id, item_number, created_at, genre, age_band, region,
           day_part, length_band, terminal_type) VALUES (?,?,?,?,?,?,?,?,?,?)`,
        o.id,
        o.customerId,
        o.itemNumber,
        o.createdAt,
        c.genre,
        c.ageBand,
        c.region,
        c.dayPart,
        c.lengthBand,
        c.terminalType,
      );
    });
  }
  async classifications(since: number) {
    return this.all('SELECT * FROM classifications WHERE created_at >= ? ORDER BY created_at', since).map(
      classificationOf,
    );
  }
  async addAd(a: AdRow) {
    this.run(
      `INSERT INTO ads (id, text, creative_file, mime_type, segments, starts_at, ends_at, weight, created_at)
       VALUES (?,?,?,?,?,?,?,?,?)`,
      a.adId,
      a.text,
      a.creativeFile,
      a.mimeType,
      JSON.stringify(a.segments),
      a.startsAt,
      a.endsAt,
      a.weight,
      a.createdAt,
    );
  }
  async ads(includeRemoved = false) {
    return this.all(
      `SELECT * FROM ads ${includeRemoved ? '' : 'WHERE removed_at IS NULL'} ORDER BY created_at`,
    ).map(
      (r): AdRow => ({
        adId: r.id as string,
        text: r.text as string,
        creativeFile: r.creative_file as string,
        mimeType: r.mime_type as string,
        segments: JSON.parse(r.segments as string),
        startsAt: r.starts_at as number,
        endsAt: r.ends_at as number,
        weight: r.weight as number,
        createdAt: r.created_at as number,
        removedAt: (r.removed_at as number | null) ?? null,
      }),
    );
  }
  async recordImpression(i: {
    impressionId: string;
    adId: string;
    terminalId: string;
    shownAt: number;
    completed: boolean;
  }) {
    return (
      this.run(
        `INSERT INTO impressions (impression_id, ad_id, terminal_id, shown_at, completed, received_at)
         VALUES (?,?,?,?,?,?) ON CONFLICT(impression_id) DO NOTHING`,
        i.impressionId,
        i.adId,
        i.terminalId,
        i.shownAt,
        i.completed ? 1 : 0,
        Date.now(),
      ).changes === 1
    );
  }
  /** Impressions with the segments of the customer whose terminal showed them. */
  async impressionRows(since: number) {
    return this.all(
      `SELECT i.ad_id, i.completed, COALESCE(c.age_band, 'unknown') AS age_band, COALESCE(c.region, 'unknown') AS region,
              COALESCE(t.kind, 'unknown') AS kind, COALESCE(a.text, '') AS text
         FROM impressions i
         LEFT JOIN terminals t ON t.id = i.terminal_id
         LEFT JOIN customers c ON c.id = t.customer_id
         LEFT JOIN ads a ON a.id = i.ad_id
        WHERE i.shown_at >= ?`,
      since,
    ).map((r) => ({
      adId: r.ad_id as string,
      adText: r.text as string,
      completed: (r.completed as number) === 1,
      ageBand: r.age_band as string,
      region: r.region as string,
      terminalType: (r.kind as string) === 'browser' ? 'desktop' : (r.kind as string),
    }));
  }
  async impressionCounts() {
    return this.all(
      'SELECT ad_id, COUNT(*) AS shown, SUM(completed) AS completed FROM impressions GROUP BY ad_id',
    ).map((r) => ({ adId: r.ad_id as string, shown: r.shown as number, completed: r.completed as number }));
  }
  async removeAd(adId: string, now: number) {
    return (
      this.run('UPDATE ads SET removed_at = ? WHERE id = ? AND removed_at IS NULL', now, adId).changes === 1
    );
  }
  async latestClassification(customerId: string) {
    const r = this.get(
      'SELECT * FROM classifications WHERE customer_id = ? ORDER BY created_at DESC LIMIT 1',
      customerId,
    );
    if (!r) return undefined;
    const {
      orderId: _o,
      customerId: _c,
      itemNumber: _i,
      createdAt: _t,
      ...classification
    } = classificationOf(r);
    return classification;
  }

  private insertOrder(o: OrderRow, jobs: JobRow[]) {
    this.run(
      `INSERT INTO orders (id, customer_id, item_number, terminal_id, period_s, content_at, key_at, not_before,
           not_after, wrapped_key, content_state, key_state, chunks_delivered, total_chunks, size, chunk_size,
           price_cents, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      o.id,
      o.customerId,
      o.itemNumber,
      o.terminalId,
      o.periodSeconds,
      o.contentAt,
      o.keyAt,
      o.notBefore,
      o.notAfter,
      o.wrappedKey && Buffer.from(o.wrappedKey),
      o.contentState,
      o.keyState,
      o.chunksDelivered,
      o.totalChunks,
      o.size,
      o.chunkSize,
      o.priceCents,
      o.createdAt,
    );
    for (const j of jobs) {
      this.run(
        'INSERT INTO jobs (order_id, kind, run_at, terminal_id) VALUES (?,?,?,?)',
        j.orderId,
        j.kind,
        j.runAt,
        j.terminalId,
      );
    }
  }
  async orderById(id: string) {
    const r = this.get('SELECT * FROM orders WHERE id = ?', id);
    return r && orderOf(r);
  }
  async ordersOfCustomer(customerId: string) {
    return this.all('SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at DESC', customerId).map(
      orderOf,
    );
  }
  async countRecentOrders(customerId: string, since: number) {
    const r = this.get(
      'SELECT COUNT(*) AS n FROM orders WHERE customer_id = ? AND created_at >= ?',
      customerId,
      since,
    );
    return (r?.n as number) ?? 0;
  }
  async setContentProgress(orderId: string, state: OrderRow['contentState'], chunksDelivered: number) {
    this.run(
      'UPDATE orders SET content_state = ?, chunks_delivered = ? WHERE id = ?',
      state,
      chunksDelivered,
      orderId,
    );
  }
  async setKeyState(orderId: string, state: OrderRow['keyState']) {
    this.run('UPDATE orders SET key_state = ? WHERE id = ?', state, orderId);
  }
  async wipeOrderKey(orderId: string) {
    this.run('UPDATE orders SET wrapped_key = NULL WHERE id = ?', orderId);
  }

  async pendingJobs() {
    return this.all('SELECT * FROM jobs ORDER BY run_at').map(jobOf);
  }
  async dueJobs(now: number, limit: number) {
    return this.all(
      "SELECT * FROM jobs WHERE state = 'pending' AND run_at <= ? ORDER BY run_at LIMIT ?",
      now,
      limit,
    ).map(jobOf);
  }
  async nextJobAt(after: number) {
    const r = this.get("SELECT MIN(run_at) AS t FROM jobs WHERE state = 'pending' AND run_at > ?", after);
    return (r?.t as number | null) ?? undefined;
  }
  async setJobState(orderId: string, kind: JobKind, state: JobState) {
    this.run('UPDATE jobs SET state = ? WHERE order_id = ? AND kind = ?', state, orderId, kind);
  }
  async wakeTerminalJobs(terminalId: string) {
    return this.run(
      "UPDATE jobs SET state = 'pending' WHERE terminal_id = ? AND state != 'pending'",
      terminalId,
    ).changes;
  }
  async resetJobStates() {
    this.run("UPDATE jobs SET state = 'pending' WHERE state != 'pending'");
  }
  async completeJob(orderId: string, kind: JobKind) {
    this.run('DELETE FROM jobs WHERE order_id = ? AND kind = ?', orderId, kind);
  }

  async licenceOf(orderId: string) {
    const r = this.get('SELECT data, sig FROM licences WHERE order_id = ?', orderId);
    return r && { data: r.data as string, sig: r.sig as string };
  }
  async saveLicence(orderId: string, licence: { data: string; sig: string }, issuedAt: number) {
    await this.durableSoon(() =>
      this.run(
        'INSERT INTO licences (order_id, data, sig, issued_at) VALUES (?,?,?,?) ON CONFLICT(order_id) DO NOTHING',
        orderId,
        licence.data,
        licence.sig,
        issuedAt,
      ),
    );
  }
}
