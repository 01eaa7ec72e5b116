/**
 * What a terminal keeps: its identity, the trusted-time high-water mark, and per rental the
 * delivery record, the ciphertext chunks and the licence. The headless terminal keeps it in files;
 * the player app keeps it in IndexedDB (Dexie). The core only talks to this interface.
 */
import type { Identity, SignedEnvelope } from '../../shared/crypto.ts';

export interface StoredRental {
  orderId: string;
  itemNumber: number;
  title: string;
  mimeType: string;
  size: number;
  chunkSize: number;
  totalChunks: number;
  /** Chunks 0..have-1 are stored. */
  have: number;
  /** When the key is due (the window opens), as the server announced it. */
  notBefore: number;
  notAfter: number;
  /** Set once the window closed and key and ciphertext were wiped. */
  expired: boolean;
}

export interface PendingImpression {
  impressionId: string;
  adId: string;
  shownAt: number;
  completed: boolean;
}

/** The pre-roll that came with a delivery, kept as received so it can be checked again before it plays. */
export interface StoredPreroll {
  envelope: SignedEnvelope;
  creative: Uint8Array;
  /** Played once to its end: the title now starts without it. */
  played: boolean;
}

export interface TerminalState {
  highWater: number;
  /** The server's signing key, pinned at first contact. */
  serverPublicKey: string | null;
}

export interface TerminalStorage {
  loadIdentity(): Promise<Identity | undefined>;
  saveIdentity(identity: Identity): Promise<void>;
  loadState(): Promise<TerminalState>;
  saveState(state: TerminalState): Promise<void>;

  rentals(): Promise<StoredRental[]>;
  rental(orderId: string): Promise<StoredRental | undefined>;
  /**
   * Record a rental. `durable: false` when nothing depends on the record surviving a power cut or a
   * crash yet (a new offer, nothing stored: the server offers it again), so storage may skip its
   * sync or keep it in memory until a durable record replaces it; it must still read it back.
   */
  putRental(rental: StoredRental, opts?: { durable?: boolean }): Promise<void>;
  /**
   * Store chunk `index` (ciphertext). Must be readable after a crash once putRental recorded it.
   * `cipher` (here and in writeChunks) may be a buffer the socket uses again once the promise
   * settles: copy it to keep it.
   */
  writeChunk(rental: StoredRental, index: number, cipher: Uint8Array): Promise<void>;
  /** Store consecutive chunks from `first` in one go (optional: the core falls back to writeChunk). */
  writeChunks?(rental: StoredRental, first: number, ciphers: Uint8Array[]): Promise<void>;
  readChunk(rental: StoredRental, index: number): Promise<Uint8Array | undefined>;
  /**
   * Chunks first..first+count-1 in one go, stopping at the first missing one (optional). The chunks
   * may be views of `into` when it is given and big enough: the caller is done with them before it
   * passes the same buffer again.
   */
  readChunks?(rental: StoredRental, first: number, count: number, into?: Uint8Array): Promise<Uint8Array[]>;
  /**
   * Memory to lend readChunks for `rental`'s runs of chunks up to `bytes` long (optional: a plain
   * buffer otherwise). Storage that reads past the page cache needs memory it can read into so.
   */
  readBuffer?(rental: StoredRental, bytes: number): Uint8Array;
  /** Make written chunks durable before they are reported as stored. */
  flush(orderId: string): Promise<void>;
  /**
   * A title that arrived whole before any of it was written (a small one), in one step (optional:
   * the core falls back to writeChunks, flush and putRental): `ciphers` are all its chunks, from the
   * first; once it resolves they are durable and `rental` (with `have` = all of them) is recorded.
   */
  storeWhole?(rental: StoredRental, ciphers: Uint8Array[]): Promise<void>;

  licence(orderId: string): Promise<SignedEnvelope | undefined>;
  putLicence(orderId: string, licence: SignedEnvelope): Promise<void>;
  preroll(orderId: string): Promise<StoredPreroll | undefined>;
  putPreroll(orderId: string, preroll: StoredPreroll): Promise<void>;
  /** Forget key, ciphertext and pre-roll; the rental record stays, marked expired. */
  wipe(orderId: string): Promise<void>;
  /** Ad impressions not yet acknowledged by the server (kept across restarts and offline spells). */
  queueImpression(i: PendingImpression): Promise<void>;
  pendingImpressions(): Promise<PendingImpression[]>;
  dropImpression(impressionId: string): Promise<void>;
  /** Release open files or database handles (the terminal stopped). */
  close?(): Promise<void>;
}
