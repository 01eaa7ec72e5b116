/**
 * What both storage engines share: row mappers (column names to repository rows) and the longer SQL
 * statements, written with ? placeholders (PostgreSQL's adapter numbers them).
 */
import type { Classification } from '../../shared/classification.ts';
import type {
  AdRow,
  CatalogRow,
  ClassificationRow,
  CustomerRow,
  ImpressionRow,
  JobKind,
  JobRow,
  NamedOrder,
  OrderRow,
  TerminalRow,
} from './repository.ts';

export type Row = Record<string, unknown>;

export const customerOf = (r: Row): CustomerRow => ({
  id: r.id as string,
  email: r.email as string,
  name: r.name as string,
  ageBand: (r.age_band as CustomerRow['ageBand']) ?? null,
  region: (r.region as CustomerRow['region']) ?? null,
  passwordHash: r.password_hash as string,
  createdAt: r.created_at as number,
  role: r.role === 'admin' ? 'admin' : 'customer',
});

export const terminalOf = (r: Row): TerminalRow => ({
  id: r.id as string,
  signPublicKey: new Uint8Array(r.sign_public_key as Buffer),
  kind: r.kind as TerminalRow['kind'],
  name: r.name as string,
  customerId: (r.customer_id as string | null) ?? null,
  linkedAt: (r.linked_at as number | null) ?? null,
  createdAt: r.created_at as number,
  lastSeenAt: (r.last_seen_at as number | null) ?? null,
  online: Boolean(r.online),
});

export const catalogOf = (r: Row): CatalogRow => ({
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

export const orderOf = (r: Row): OrderRow => ({
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

/** Orders with the names their customer sees: the title's and the terminal's (null once gone). */
export const NAMED_ORDER_SELECT = `SELECT o.*, c.title AS item_title, t.name AS terminal_name FROM orders o
  LEFT JOIN catalog c ON c.item_number = o.item_number LEFT JOIN terminals t ON t.id = o.terminal_id`;
export const namedOrderOf = (r: Row): NamedOrder => ({
  ...orderOf(r),
  title: (r.item_title as string | null) ?? null,
  terminalName: (r.terminal_name as string | null) ?? null,
});

export const classificationOf = (r: Row): ClassificationRow => ({
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

export const jobOf = (r: Row): JobRow => ({
  orderId: r.order_id as string,
  kind: r.kind as JobKind,
  runAt: r.run_at as number,
  terminalId: r.terminal_id as string,
});

/** Terminals with whether a live instance holds their connection. */
export const TERMINAL_SELECT = `SELECT t.*, EXISTS (SELECT 1 FROM terminal_presence p JOIN instances i ON i.id = p.instance_id
    WHERE p.terminal_id = t.id AND i.beat_at > ?) AS online FROM terminals t`;

/** Pending jobs this instance may take (see Repository.dueJobs); parameters: now, now - live, me, contentAnywhere, limit. */
export const DUE_JOBS_WHERE = `j.state = 'pending' AND j.run_at <= ? AND (
    j.kind = 'expire' OR (? AND j.kind = 'content')
    OR NOT EXISTS (SELECT 1 FROM terminal_presence p JOIN instances i ON i.id = p.instance_id
      WHERE p.terminal_id = j.terminal_id AND i.beat_at > ? AND p.instance_id <> ?))`;

// Statements both engines run as they are.
/** The next pending job's time (the queue's timer); served by the index of pending jobs by time. */
export const NEXT_JOB_AT = "SELECT MIN(run_at) AS t FROM jobs WHERE state = 'pending' AND run_at > ?";
/** A connecting terminal's jobs in hand or parked, pending again; served by the index of jobs not pending. */
export const WAKE_TERMINAL_JOBS =
  "UPDATE jobs SET state = 'pending' WHERE terminal_id = ? AND state <> 'pending'";
/** Every job in hand or parked, pending again (at startup); walks the index of jobs not pending. */
export const RESET_JOB_STATES = "UPDATE jobs SET state = 'pending' WHERE state <> 'pending'";
export const INSERT_JOB =
  'INSERT INTO jobs (order_id, kind, run_at, terminal_id, state, claimed_by) VALUES (?,?,?,?,?,?)';
export const jobParams = (j: JobRow) => [
  j.orderId,
  j.kind,
  j.runAt,
  j.terminalId,
  j.claimedBy ? 'claimed' : 'pending',
  j.claimedBy ?? null,
];
export const INSERT_CUSTOMER =
  'INSERT INTO customers (id, email, name, password_hash, created_at, age_band, region, role) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(email) DO NOTHING';
export const UPSERT_TERMINAL = `INSERT INTO terminals (id, sign_public_key, kind, name, created_at) VALUES (?,?,?,?,?)
       ON CONFLICT(id) DO UPDATE SET kind = excluded.kind`;
export const UPSERT_CATALOG = `INSERT INTO catalog (item_number, title, genre, year, synopsis, duration_s, price_cents, poster_file,
         media_file, mime_type, size, sha256, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
       ON CONFLICT(item_number) DO UPDATE SET title=excluded.title, genre=excluded.genre, year=excluded.year,
         synopsis=excluded.synopsis, duration_s=excluded.duration_s, price_cents=excluded.price_cents,
         poster_file=excluded.poster_file, media_file=excluded.media_file, mime_type=excluded.mime_type,
         size=excluded.size, sha256=excluded.sha256`;
/**
 * A customer's newest classification, through their newest order (every order has one, written with
 * it): by the orders' index by customer, not a walk back through everyone's classifications by time,
 * which for a customer who last ordered long ago read the whole table, for every ad picked for them.
 */
export const LATEST_CLASSIFICATION = `SELECT c.* FROM orders o JOIN classifications c ON c.order_id = o.id
    WHERE o.customer_id = ? ORDER BY o.created_at DESC LIMIT 1`;
export const INSERT_CLASSIFICATION = `INSERT INTO classifications (order_id, customer_id, item_number, created_at, genre, age_band, region,
           day_part, length_band, terminal_type) VALUES (?,?,?,?,?,?,?,?,?,?)`;
export const INSERT_AD = `INSERT INTO ads (id, text, creative_file, mime_type, segments, starts_at, ends_at, weight, created_at)
       VALUES (?,?,?,?,?,?,?,?,?)`;
export const INSERT_IMPRESSION = `INSERT INTO impressions (impression_id, ad_id, terminal_id, shown_at, completed, received_at)
         VALUES (?,?,?,?,?,?) ON CONFLICT(impression_id) DO NOTHING`;
export const IMPRESSION_ROWS = `SELECT i.ad_id, i.completed, COALESCE(c.age_band, 'unknown') AS age_band, COALESCE(c.region, 'unknown') AS region,
              COALESCE(t.kind, 'unknown') AS kind, COALESCE(a.text, '') AS text
         FROM impressions i
         LEFT JOIN terminals t ON t.id = i.terminal_id
         LEFT JOIN customers c ON c.id = t.customer_id
         LEFT JOIN ads a ON a.id = i.ad_id
        WHERE i.shown_at >= ?`;
export const INSERT_ORDER = `INSERT INTO orders (id, customer_id, item_number, terminal_id, period_s, content_at, key_at, not_before,
           not_after, wrapped_key, content_state, key_state, chunks_delivered, total_chunks, size, chunk_size,
           price_cents, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`;
export const INSERT_INSTANCE =
  'INSERT INTO instances (id, role, started_at, beat_at) VALUES (?,?,?,?) ON CONFLICT(id) DO UPDATE SET beat_at = excluded.beat_at';
export const UPSERT_PRESENCE = `INSERT INTO terminal_presence (terminal_id, instance_id, since) VALUES (?,?,?)
         ON CONFLICT(terminal_id) DO UPDATE SET instance_id = excluded.instance_id, since = excluded.since`;
export const RECOVER_JOBS = `UPDATE jobs SET state = 'pending', claimed_by = NULL WHERE state <> 'pending' AND claimed_by IS NOT NULL
         AND claimed_by NOT IN (SELECT id FROM instances WHERE beat_at > ?)`;

export const adOf = (r: Row): AdRow => ({
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
});

export const impressionOf = (r: Row): ImpressionRow => ({
  adId: r.ad_id as string,
  adText: r.text as string,
  completed: Number(r.completed) === 1,
  ageBand: r.age_band as string,
  region: r.region as string,
  terminalType: (r.kind as string) === 'browser' ? 'desktop' : (r.kind as string),
});

// Parameters, in the order the statements above take them.
export const customerParams = (c: CustomerRow) => [
  c.id,
  c.email,
  c.name,
  c.passwordHash,
  c.createdAt,
  c.ageBand,
  c.region,
  c.role,
];
export const catalogParams = (c: CatalogRow) => [
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
];
export const orderParams = (o: OrderRow) => [
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
];
export const classificationParams = (o: OrderRow, c: Classification) => [
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
];
export const adParams = (a: AdRow) => [
  a.adId,
  a.text,
  a.creativeFile,
  a.mimeType,
  JSON.stringify(a.segments),
  a.startsAt,
  a.endsAt,
  a.weight,
  a.createdAt,
];
export const impressionParams = (i: {
  impressionId: string;
  adId: string;
  terminalId: string;
  shownAt: number;
  completed: boolean;
}) => [i.impressionId, i.adId, i.terminalId, i.shownAt, i.completed ? 1 : 0, Date.now()];

/** A classification row without its keys: the customer's latest segments. */
export function segmentsOf(r: ClassificationRow): Classification {
  const { orderId: _o, customerId: _c, itemNumber: _i, createdAt: _t, ...classification } = r;
  return classification;
}
