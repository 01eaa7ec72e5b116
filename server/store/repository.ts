/**
 * The storage interface both roles use. SQLite implements it today; a PostgreSQL adapter can
 * implement the same methods. Methods are async so a networked engine fits without changes.
 */
import type { Segments } from '../../shared/ad-targeting.ts';
import type { AgeBand, Classification, Region } from '../../shared/classification.ts';
import type { ContentState, KeyState } from '../../shared/protocol.ts';

export interface AdRow {
  adId: string;
  text: string;
  creativeFile: string;
  mimeType: string;
  segments: Segments;
  startsAt: number;
  endsAt: number;
  weight: number;
  createdAt: number;
  removedAt?: number | null;
}

export interface ImpressionRow {
  adId: string;
  adText: string;
  completed: boolean;
  ageBand: string;
  region: string;
  terminalType: string;
}

export interface ClassificationRow extends Classification {
  orderId: string;
  customerId: string;
  itemNumber: number;
  createdAt: number;
}

export interface CustomerRow {
  id: string;
  email: string;
  name: string;
  ageBand: AgeBand | null;
  region: Region | null;
  passwordHash: string;
  createdAt: number;
  /** Admins may read analytics; granted from the CLI only. */
  role: 'customer' | 'admin';
}

export interface TerminalRow {
  id: string;
  signPublicKey: Uint8Array;
  kind: 'headless' | 'desktop' | 'set-top' | 'browser';
  name: string;
  customerId: string | null;
  linkedAt: number | null;
  createdAt: number;
  lastSeenAt: number | null;
  /** A live server instance holds a connection to it (any instance, not only this one). */
  online: boolean;
}

export interface CatalogRow {
  itemNumber: number;
  title: string;
  genre: string;
  year: number | null;
  synopsis: string;
  durationSeconds: number;
  priceCents: number;
  posterFile: string | null;
  mediaFile: string;
  mimeType: string;
  size: number;
  sha256: string;
  createdAt: number;
  /** Whether deliveries of this title carry a pre-roll (on unless turned off from the CLI). */
  preroll?: boolean;
}

export interface OrderRow {
  id: string;
  customerId: string;
  itemNumber: number;
  terminalId: string;
  periodSeconds: number;
  contentAt: number;
  keyAt: number;
  notBefore: number;
  notAfter: number;
  /** Per-order content key, secretboxed under the server's storage key; null once the window closed. */
  wrappedKey: Uint8Array | null;
  contentState: ContentState;
  keyState: KeyState;
  chunksDelivered: number;
  totalChunks: number;
  size: number;
  chunkSize: number;
  priceCents: number;
  createdAt: number;
}

/** An order with the names its customer sees: the title's and the terminal's (null once gone). */
export interface NamedOrder extends OrderRow {
  title: string | null;
  terminalName: string | null;
}

export type JobKind = 'content' | 'key' | 'expire';
/**
 * pending: look at it when due; claimed: taken by an instance, its work under way or handed off until
 * confirmed; parked: waiting for its terminal. Every state but pending waits alike. dispatched: what
 * earlier versions wrote for a handed-off job; read as claimed, no longer written.
 */
export type JobState = 'pending' | 'claimed' | 'dispatched' | 'parked';

/** Instances record that they are alive this often; one silent for INSTANCE_LIVE_MS is taken for dead. */
export const INSTANCE_BEAT_MS = 5_000;
export const INSTANCE_LIVE_MS = 15_000;

export interface JobRow {
  orderId: string;
  kind: JobKind;
  runAt: number;
  terminalId: string;
  /** At insert: the job is already taken by this instance (it runs it at once; see Orders). */
  claimedBy?: string;
}

export interface Repository {
  close(): Promise<void>;
  /** True when other server instances may share this store (PostgreSQL); SQLite is one instance's. */
  readonly shared: boolean;
  /**
   * True when this instance reads a write back as soon as it is made, before it is durable, and a
   * failed write takes everything made after it in its commit down with it (SQLite: one connection,
   * one transaction per commit window). A new order's jobs may then start at once, so its licence
   * shares the order's commit and flush.
   */
  readonly readsOwnWritesEarly: boolean;

  /** This instance is alive (on start, then every INSTANCE_BEAT_MS). */
  beat(instanceId: string, role: string, now: number): Promise<void>;
  /** A connection to the terminal opened on this instance, or closed (only this instance's record). */
  setPresence(terminalId: string, instanceId: string, online: boolean, now: number): Promise<void>;
  /** On start of a store no other instance shares: no connection survived the previous process. */
  clearPresence(): Promise<void>;

  createCustomer(row: CustomerRow): Promise<boolean>;
  customerByEmail(email: string): Promise<CustomerRow | undefined>;
  customerById(id: string): Promise<CustomerRow | undefined>;
  /** False when no account has that e-mail. */
  setCustomerRole(email: string, role: CustomerRow['role']): Promise<boolean>;

  createSession(tokenHash: string, customerId: string, createdAt: number, expiresAt: number): Promise<void>;
  sessionCustomer(tokenHash: string, now: number): Promise<string | undefined>;
  revokeSession(tokenHash: string, now: number): Promise<void>;

  upsertTerminal(
    row: Omit<TerminalRow, 'customerId' | 'linkedAt' | 'lastSeenAt' | 'online'>,
  ): Promise<TerminalRow>;
  terminalById(id: string): Promise<TerminalRow | undefined>;
  terminalsOfCustomer(customerId: string): Promise<TerminalRow[]>;
  linkTerminal(terminalId: string, customerId: string, name: string, now: number): Promise<void>;
  renameTerminal(terminalId: string, name: string): Promise<void>;
  unlinkTerminal(terminalId: string): Promise<void>;
  touchTerminal(terminalId: string, now: number): Promise<void>;

  /** Replace the terminal's pairing code. */
  setPairingCode(terminalId: string, code: string, expiresAt: number): Promise<void>;
  pairingCodeOf(terminalId: string, now: number): Promise<{ code: string; expiresAt: number } | undefined>;
  /** Use a code once: returns its terminal and deletes it, or undefined if unknown or expired. */
  takePairingCode(code: string, now: number): Promise<string | undefined>;

  upsertCatalogItem(row: CatalogRow): Promise<void>;
  catalog(): Promise<CatalogRow[]>;
  catalogItem(itemNumber: number): Promise<CatalogRow | undefined>;
  /** False when the item is not in the catalog. */
  setCatalogPreroll(itemNumber: number, on: boolean): Promise<boolean>;

  /** Store the order, its jobs and its classification in one transaction: durable before we acknowledge. */
  createOrder(order: OrderRow, jobs: JobRow[], classification: Classification): Promise<void>;
  /** Customer identification records since a time (append-only; there is no update or delete). */
  classifications(since: number): Promise<ClassificationRow[]>;
  /** The customer's most recent classification, the segments ads are matched against. */
  latestClassification(customerId: string): Promise<Classification | undefined>;

  addAd(ad: AdRow): Promise<void>;
  /** Ads in the inventory (removed ones only when asked). */
  ads(includeRemoved?: boolean): Promise<AdRow[]>;
  removeAd(adId: string, now: number): Promise<boolean>;
  /** Store an impression once; false when this impression id was already counted. */
  recordImpression(i: {
    impressionId: string;
    adId: string;
    terminalId: string;
    shownAt: number;
    completed: boolean;
  }): Promise<boolean>;
  impressionCounts(): Promise<{ adId: string; shown: number; completed: number }[]>;
  impressionRows(since: number): Promise<ImpressionRow[]>;
  orderById(id: string): Promise<OrderRow | undefined>;
  /** One order with its names, in one read (what the customer's store app is sent). */
  namedOrder(id: string): Promise<NamedOrder | undefined>;
  ordersOfCustomer(customerId: string): Promise<NamedOrder[]>;
  countRecentOrders(customerId: string, since: number): Promise<number>;
  /** Never moves an order back from delivered: progress reports may arrive out of order. */
  setContentProgress(orderId: string, state: ContentState, chunksDelivered: number): Promise<void>;
  setKeyState(orderId: string, state: KeyState): Promise<void>;
  /** The window closed: forget the content key for good. */
  wipeOrderKey(orderId: string): Promise<void>;

  pendingJobs(): Promise<JobRow[]>;
  /**
   * Take jobs whose time has come, oldest first, for this instance: each is taken by one instance
   * only (state 'claimed'). Jobs for a terminal connected to another live instance are left to it;
   * expiry (and content, when `contentAnywhere`: a key server with separate content servers) is anyone's.
   */
  dueJobs(now: number, limit: number, instanceId: string, contentAnywhere: boolean): Promise<JobRow[]>;
  /** When the next job after `after` is due, if any. */
  nextJobAt(after: number): Promise<number | undefined>;
  setJobState(orderId: string, kind: JobKind, state: JobState): Promise<void>;
  /** A terminal (re)connected: everything waiting for it or sent to its old connection is looked at again. */
  wakeTerminalJobs(terminalId: string): Promise<number>;
  /** On start of a store no other instance shares: nothing is in flight in a fresh process. */
  resetJobStates(): Promise<void>;
  /** Jobs taken by instances that stopped beating go back to the queue; returns how many. */
  recoverJobs(now: number): Promise<number>;
  completeJob(orderId: string, kind: JobKind): Promise<void>;

  /** The licence is issued once and re-sent byte for byte; never a second one with another key. */
  licenceOf(orderId: string): Promise<{ data: string; sig: string } | undefined>;
  /** Stores the order's licence unless it has one; returns the one it has (another instance's, if first). */
  saveLicence(
    orderId: string,
    licence: { data: string; sig: string },
    issuedAt: number,
  ): Promise<{ data: string; sig: string }>;
}
