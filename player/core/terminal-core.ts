/**
 * The terminal: the same core in the headless CLI and the player app. It keeps its identity,
 * authenticates to the server by its key, shows a pairing code until linked, stores ciphertext as
 * it arrives (resuming where storage left off), verifies licences against the pinned server key,
 * decrypts only inside the window by trusted time, and wipes key and ciphertext when it closes.
 */
import { ChurnMap } from '../../shared/churn-map.ts';
import {
  ChunkOpener,
  chunkCount,
  cipherChunkLength,
  concatBytes,
  fromB64,
  generateIdentity,
  type Identity,
  openSignedJson,
  plainChunkLength,
  signDetached,
  terminalIdFromPublicKey,
  toB64,
} from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { type Licence, unsealContentKey, verifyLicence } from '../../shared/licence.ts';
import { type Preroll, verifyPreroll } from '../../shared/preroll.ts';
import {
  type DeliveryOffer,
  decodeChunkFrame,
  ServerMessage,
  type ServerMessageOf,
  SignedTime,
  type TerminalWelcome,
} from '../../shared/protocol.ts';
import type { SocketFactory, SocketLike } from '../../shared/rental-client.ts';
import { type Clock, systemClock, TrustedClock, windowState } from '../../shared/rental-window.ts';
import type { StoredRental, TerminalStorage } from './terminal-storage.ts';
import { arrived, forget, released } from './unwritten-budget.ts';

export const TERMINAL_ERROR_CODES = [
  'NOT_FOUND',
  'NO_LICENCE',
  'WINDOW_NOT_OPEN',
  'EXPIRED',
  'CLOCK_TURNED_BACK',
  'INCOMPLETE',
  'TAMPERED',
] as const;
export type TerminalErrorCode = (typeof TERMINAL_ERROR_CODES)[number];

export class TerminalError extends Error {
  constructor(
    readonly code: TerminalErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TerminalError';
  }
}

export type TerminalEvent =
  | { type: 'connected'; url: string }
  | { type: 'disconnected'; url: string; retryInMs: number }
  | ({ type: 'welcome' } & TerminalWelcome)
  | {
      type: 'linked';
      linked: boolean;
      name: string;
      pairingCode: string | null;
      pairingExpiresAt: number | null;
    }
  /** `from`: the server delivering it (the key server, or one of the content servers). */
  | { type: 'offer'; rental: StoredRental; from: string }
  | { type: 'progress'; orderId: string; have: number; total: number; bytes: number; size: number }
  | { type: 'stored'; orderId: string }
  | { type: 'licence'; orderId: string; notBefore: number; notAfter: number }
  | { type: 'expired'; orderId: string }
  | { type: 'rejected'; orderId: string; reason: string }
  | { type: 'server-error'; code: string; message: string }
  /** An ad pushed by the key server for the idle and waiting screens. */
  | { type: 'ad'; adId: string; text: string; mimeType: string; creativeUrl: string }
  /** Something failed on this terminal itself (its storage, say). */
  | { type: 'local-error'; message: string }
  | { type: 'preroll'; orderId: string; adId: string; text: string };

export interface TerminalOptions {
  serverUrl: string;
  storage: TerminalStorage;
  socketFactory: SocketFactory;
  kind: 'headless' | 'desktop' | 'set-top' | 'browser';
  name: string;
  clock?: Clock;
  onEvent?: (e: TerminalEvent) => void;
  /**
   * Progress is reported (after a durable flush) every this many chunks, or after
   * PROGRESS_INTERVAL_MS, whichever comes first: few flushes on a fast link, a moving bar on a slow one.
   */
  progressEvery?: number;
  /** Largest chunk size accepted from a server. */
  maxChunkSize?: number;
}

interface Link {
  url: string;
  primary: boolean;
  ws?: SocketLike;
  nonce?: Uint8Array;
  backoffMs: number;
  authId?: number;
  refreshId?: number;
}

interface Download {
  link: Link;
  rental: StoredRental;
  /** Chunks are written strictly in order, one batch after another. */
  chain: Promise<void>;
  /**
   * Chunks received and not yet handed to storage, written together by the next batch; `recycle`
   * hands a chunk's buffer back to the socket that lent it, once written or dropped.
   */
  incoming: { index: number; cipher: Uint8Array; recycle?: (data: Uint8Array) => void }[];
  /** Bytes received and not yet written (incoming, and the batch being written): see `written`. */
  queued: number;
  sinceReport: number;
  lastReportAt: number;
  failed: boolean;
  /** The running flush-and-report, if any; writing goes on meanwhile. */
  syncing?: Promise<void>;
  syncAgain: boolean;
}

/** A new rental record for an offer: nothing stored yet. */
function rentalOf(m: DeliveryOffer): StoredRental {
  return {
    orderId: m.orderId,
    itemNumber: m.itemNumber,
    title: m.title,
    mimeType: m.mimeType,
    size: m.size,
    chunkSize: m.chunkSize,
    totalChunks: m.totalChunks,
    have: 0,
    notBefore: m.notBefore,
    notAfter: m.notAfter,
    expired: false,
  };
}

/** An offer this terminal will not take, and why (sent back as delivery.reject's reason). */
class OfferRefused extends Error {}

const MAX_BACKOFF_MS = 10_000;
/** Chunks read from storage at once when decrypting (16 × 64 KiB). */
const READ_BLOCK_CHUNKS = 16;
/** Chunks written to storage at once while receiving (16 × 64 KiB): big enough to save syscalls, small enough that deliveries to one device take turns fairly. */
const WRITE_BATCH_CHUNKS = 16;
const PROGRESS_INTERVAL_MS = 250;

/** Hand received chunks' buffers back to the socket that lent them (if it lends them). */
function recycleAll(chunks: Download['incoming']): void {
  for (const c of chunks) c.recycle?.(c.cipher);
}

export class TerminalCore {
  private identity!: Identity;
  private trusted!: TrustedClock;
  private serverPublicKey: Uint8Array | undefined;
  private readonly links = new Map<string, Link>();
  // ChurnMaps: a download's entries come and go with every order (see shared/churn-map.ts).
  private readonly downloads = new ChurnMap<string, Download>();
  /** The last write chain per order, so a resumed download starts after the old one settled. */
  private readonly writeChains = new ChurnMap<string, Promise<void>>();
  /** Each rental's expiry timer, the end it was set for, and when it fires (performance.now()). */
  private readonly expiryTimers = new Map<
    string,
    { timer: ReturnType<typeof setTimeout>; notAfter: number; firesAt: number }
  >();
  private stopped = false;
  private nextId = 1;
  private pairingTimer: ReturnType<typeof setTimeout> | undefined;
  /** Impressions sent and awaiting the server's result, by request id. */
  private readonly impressionRequests = new Map<number, string>();
  private readonly clock: Clock;
  terminalId = '';
  linked = false;
  pairingCode: string | null = null;

  constructor(private readonly opts: TerminalOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  /** Load or create the identity, sweep expired rentals, and connect. */
  async start(): Promise<void> {
    await this.init();
    this.connect(this.opts.serverUrl, true);
  }

  /** Load state without connecting (for offline commands such as play or list). */
  async init(): Promise<void> {
    let id = await this.opts.storage.loadIdentity();
    if (!id) {
      id = generateIdentity();
      await this.opts.storage.saveIdentity(id);
    }
    this.identity = id;
    this.terminalId = terminalIdFromPublicKey(id.signPublicKey);
    const state = await this.opts.storage.loadState();
    this.serverPublicKey = state.serverPublicKey ? fromB64(state.serverPublicKey) : undefined;
    this.trusted = new TrustedClock(this.clock, state.highWater);
    for (const r of await this.opts.storage.rentals()) {
      if (!r.expired) this.scheduleExpiry(r.orderId, r.notAfter);
    }
  }

  /** Stops connecting and timing; settles once storage has finished what it was writing and closed. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pairingTimer);
    for (const e of this.expiryTimers.values()) clearTimeout(e.timer);
    for (const l of this.links.values()) l.ws?.close();
    const closed = this.opts.storage.close?.() ?? Promise.resolve();
    this.guard(closed);
    return closed.catch(() => undefined);
  }

  /** Time as the terminal trusts it, or the reason it cannot. */
  trustedNow() {
    return this.trusted.now();
  }

  rentals(): Promise<StoredRental[]> {
    return this.opts.storage.rentals();
  }

  async licenceOf(orderId: string): Promise<Licence | undefined> {
    const env = await this.opts.storage.licence(orderId);
    if (!env || !this.serverPublicKey) return undefined;
    return verifyLicence(env, this.serverPublicKey, this.terminalId);
  }

  /**
   * An ad was shown (completed: seen to the end, or skipped). Kept until the server acknowledges it,
   * so an offline player reports it later; its id makes a resend count once.
   */
  async recordImpression(adId: string, completed: boolean): Promise<void> {
    await this.opts.storage.queueImpression({
      impressionId: crypto.randomUUID(),
      adId,
      shownAt: this.clock.now(),
      completed,
    });
    await this.flushImpressions();
  }

  private async flushImpressions(): Promise<void> {
    const link = this.links.get(this.opts.serverUrl);
    if (link?.ws?.readyState !== 1 || !link.authId) return;
    const waiting = new Set(this.impressionRequests.values());
    for (const i of await this.opts.storage.pendingImpressions()) {
      if (waiting.has(i.impressionId)) continue;
      const id = this.nextId++;
      this.impressionRequests.set(id, i.impressionId);
      this.send(link, { type: 'ad.impression', id, ...i });
    }
  }

  /** Ask for a fresh pairing code (the old one expired). */
  refreshPairing(): void {
    const link = this.links.get(this.opts.serverUrl);
    if (link?.ws?.readyState !== 1) return;
    link.refreshId = this.nextId++;
    this.send(link, { type: 'terminal.pairing.refresh', id: link.refreshId });
  }

  /** A code shown on screen should never silently go stale: fetch a new one as it expires. */
  private schedulePairingRefresh(expiresAt: number | null): void {
    clearTimeout(this.pairingTimer);
    if (this.linked || expiresAt === null || this.stopped) return;
    const t = setTimeout(() => this.refreshPairing(), Math.max(1000, expiresAt - this.clock.now()));
    (t as { unref?: () => void }).unref?.();
    this.pairingTimer = t;
  }

  /**
   * Decrypt a rental chunk by chunk into `sink`, only inside its window. The clear title is never
   * assembled here; the sink decides where it goes (a file, stdout, a media element's buffer).
   * Each chunk is new memory the sink may keep, unless `opts.reuse`: then every chunk is decrypted
   * into the same buffer, which the sink must be done with when it returns (or its promise
   * settles), as a media element's appendBuffer is (it copies). A new 64 KiB array per chunk was
   * 6-18 % of a player's decryption in garbage collection (a CPU profile of the benchmark's).
   */
  async decrypt(
    orderId: string,
    sink: (plain: Uint8Array, index: number) => Promise<void> | void,
    signal?: AbortSignal,
    opts: { reuse?: boolean } = {},
  ): Promise<Licence> {
    const { r, licence } = await this.checkPlayable(orderId);
    const key = unsealContentKey(licence, this.identity);
    // Read a block of chunks ahead while this one is decrypted and consumed: storage and CPU overlap,
    // and one read serves many chunks.
    const storage = this.opts.storage;
    // Two block buffers, lent to storage in turn: one is read into while the other's chunks are
    // decrypted (their plaintext is new memory), so a title costs two buffers, not one per block.
    // Storage that reads past the page cache makes them (aligned memory).
    const blockBytes = Math.min(READ_BLOCK_CHUNKS, r.totalChunks) * cipherChunkLength(r.chunkSize);
    const lent = [0, 1].map(() => storage.readBuffer?.(r, blockBytes) ?? new Uint8Array(blockBytes));
    let reads = 0;
    const read = (first: number) => {
      const count = Math.min(READ_BLOCK_CHUNKS, r.totalChunks - first);
      const p = storage.readChunks
        ? storage.readChunks(r, first, count, lent[reads++ % 2])
        : storage.readChunk(r, first).then((c) => (c ? [c] : []));
      p.catch(() => undefined); // if the loop stops early, an unread block's failure does not matter
      return p;
    };
    let block: Uint8Array[] = [];
    let blockStart = 0;
    let next = read(0);
    const opener = new ChunkOpener(key, cipherChunkLength(r.chunkSize));
    const into = opts.reuse ? new Uint8Array(r.chunkSize) : undefined;
    try {
      for (let i = 0; i < r.totalChunks; i++) {
        if (signal?.aborted) break;
        if (i === blockStart + block.length) {
          block = await next;
          blockStart = i;
          if (block.length === 0) throw new TerminalError('TAMPERED', `chunk ${i} is missing`);
          if (i + block.length < r.totalChunks) next = read(i + block.length);
        }
        const cipher = block[i - blockStart] as Uint8Array;
        const plain = opener.open(cipher, orderId, i, r.totalChunks, into);
        if (!plain) throw new TerminalError('TAMPERED', `chunk ${i} failed authentication`);
        await sink(plain, i);
      }
    } finally {
      opener.close();
      into?.fill(0); // the last plaintext, as the opener wipes its own
    }
    return licence;
  }

  /**
   * Whether a rental can play now: stored whole, its licence genuine, inside its window by trusted
   * time. Throws a TerminalError saying why not (and wipes a rental found expired).
   */
  async checkPlayable(orderId: string): Promise<{ r: StoredRental; licence: Licence }> {
    const r = await this.opts.storage.rental(orderId);
    if (!r) throw new TerminalError('NOT_FOUND', 'no such rental on this terminal');
    if (r.expired)
      throw new TerminalError('EXPIRED', 'the rental period has ended; key and content were wiped');
    const env = await this.opts.storage.licence(orderId);
    if (!env || !this.serverPublicKey)
      throw new TerminalError('NO_LICENCE', 'the key has not been delivered yet');
    let licence: Licence;
    try {
      licence = verifyLicence(env, this.serverPublicKey, this.terminalId);
    } catch {
      throw new TerminalError('TAMPERED', 'the stored licence is not valid for this terminal');
    }
    const now = this.trusted.now();
    await this.saveHighWater();
    if (!now.ok) {
      throw new TerminalError(
        'CLOCK_TURNED_BACK',
        `this device's clock is ${Math.round(now.behindMs / 60000)} min behind the last trusted time; fix the clock or connect to the server`,
      );
    }
    const state = windowState(licence, now.now);
    if (state === 'not-yet')
      throw new TerminalError('WINDOW_NOT_OPEN', 'the rental period has not started yet');
    if (state === 'expired') {
      await this.expire(orderId);
      throw new TerminalError('EXPIRED', 'the rental period has ended; key and content were wiped');
    }
    if (r.have < r.totalChunks) {
      throw new TerminalError('INCOMPLETE', `only ${r.have} of ${r.totalChunks} chunks have arrived`);
    }
    return { r, licence };
  }

  /**
   * The pre-roll that must play before this title starts for the first time, checked again against
   * the server's signature (storage is not trusted); undefined once it has played or if none came.
   */
  async pendingPreroll(
    orderId: string,
  ): Promise<{ adId: string; text: string; mimeType: string; creative: Uint8Array } | undefined> {
    const p = await this.opts.storage.preroll(orderId);
    if (!p || p.played || !this.serverPublicKey) return undefined;
    try {
      const { adId, text, mimeType } = verifyPreroll(p.envelope, p.creative, this.serverPublicKey, orderId);
      return { adId, text, mimeType, creative: p.creative };
    } catch {
      throw new TerminalError('TAMPERED', 'the ad stored with this rental has been altered');
    }
  }

  /** The pre-roll played to its end: the title starts without it from now on, and it counts as seen. */
  async prerollPlayed(orderId: string): Promise<void> {
    const p = await this.opts.storage.preroll(orderId);
    if (!p || p.played || !this.serverPublicKey) return;
    const { adId } = verifyPreroll(p.envelope, p.creative, this.serverPublicKey, orderId);
    await this.opts.storage.putPreroll(orderId, { ...p, played: true });
    await this.recordImpression(adId, true);
  }

  // ------------------------------------------------------------ connection

  private connect(url: string, primary: boolean): void {
    if (this.stopped) return;
    const link: Link = this.links.get(url) ?? { url, primary, backoffMs: 250 };
    this.links.set(url, link);
    const ws = this.opts.socketFactory(url);
    ws.binaryType = 'arraybuffer';
    link.ws = ws;
    ws.addEventListener('message', (ev) => {
      if (typeof ev.data === 'string') this.onText(link, ev.data);
      else if (ev.data instanceof ArrayBuffer) this.onChunk(link, new Uint8Array(ev.data));
      else if (ev.data instanceof Uint8Array) this.onChunk(link, ev.data, ws.recycle);
    });
    ws.addEventListener('error', () => {});
    ws.addEventListener('close', () => {
      for (const [orderId, d] of this.downloads.entries()) {
        if (d.link !== link) continue;
        d.failed = true; // stop writing for a dead link; the next offer resumes from storage
        this.dropUnwritten(d);
        this.downloads.delete(orderId);
      }
      forget(ws);
      // Unanswered impression reports on this connection go again on the next one.
      if (link.primary) this.impressionRequests.clear();
      if (this.stopped) return;
      const retry = Math.round(link.backoffMs * (0.75 + Math.random() * 0.5));
      link.backoffMs = Math.min(link.backoffMs * 2, MAX_BACKOFF_MS);
      this.emit({ type: 'disconnected', url, retryInMs: retry });
      setTimeout(() => this.connect(url, primary), retry);
    });
  }

  private send(link: Link, msg: Record<string, unknown>): void {
    if (link.ws?.readyState === 1) link.ws.send(JSON.stringify(msg));
  }

  /** Background work started from a socket event or timer: a failure is reported, never left unhandled. */
  private guard(work: Promise<unknown> | undefined): void {
    work?.catch((err: unknown) =>
      this.emit({ type: 'local-error', message: err instanceof Error ? err.message : String(err) }),
    );
  }

  private emit(e: TerminalEvent) {
    this.opts.onEvent?.(e);
  }

  private onText(link: Link, text: string): void {
    let parsed: ReturnType<typeof ServerMessage.safeParse>;
    try {
      parsed = ServerMessage.safeParse(JSON.parse(text));
    } catch {
      return;
    }
    if (!parsed.success) return;
    const m = parsed.data;
    switch (m.type) {
      case 'server.hello':
        // A handshake that failed here would leave the link open but never authenticated: start over.
        this.guard(
          this.onHello(link, m).catch((err: unknown) => {
            link.ws?.close();
            throw err;
          }),
        );
        break;
      case 'result': {
        if (m.re === link.authId || m.re === link.refreshId) this.onWelcome(link, m.value as TerminalWelcome);
        const impressionId = this.impressionRequests.get(m.re);
        if (impressionId) {
          this.impressionRequests.delete(m.re);
          this.guard(this.opts.storage.dropImpression(impressionId));
        }
        break;
      }
      case 'error': {
        const impressionId = m.re === null ? undefined : this.impressionRequests.get(m.re);
        if (impressionId && m.re !== null) {
          // Refused for good (the ad is gone, the report malformed): do not send it again.
          this.impressionRequests.delete(m.re);
          if (m.code === 'NOT_FOUND' || m.code === 'BAD_MESSAGE')
            this.guard(this.opts.storage.dropImpression(impressionId));
          break;
        }
        this.emit({ type: 'server-error', code: m.code, message: m.message });
        break;
      }
      case 'terminal.linked':
        this.linked = m.linked;
        this.pairingCode = m.pairingCode;
        this.schedulePairingRefresh(m.pairingExpiresAt);
        this.emit({ ...m, type: 'linked' });
        break;
      case 'delivery.offer':
        if (m.pushed) {
          this.onPushedOffer(link, m);
          break;
        }
        // An offer this terminal failed to take up is refused, so the server retries instead of waiting.
        this.guard(
          this.onOffer(link, m).catch((err: unknown) => {
            this.send(link, { type: 'delivery.reject', orderId: m.orderId, reason: 'storage failed' });
            throw err;
          }),
        );
        break;
      case 'licence.deliver':
        this.guard(this.onLicence(link, m));
        break;
      case 'delivery.preroll': {
        // Stored before any chunk that follows it: a title is never complete without its pre-roll.
        const d = this.downloads.get(m.orderId);
        const stored = (d?.chain ?? Promise.resolve()).then(() => this.onPreroll(m));
        if (d) d.chain = stored.catch(() => undefined);
        this.guard(stored);
        break;
      }
      case 'ad.push':
        this.emit({
          type: 'ad',
          adId: m.adId,
          text: m.text,
          mimeType: m.mimeType,
          creativeUrl: m.creativeUrl,
        });
        break;
    }
  }

  private async onHello(link: Link, m: ServerMessageOf<'server.hello'>): Promise<void> {
    const presented = fromB64(m.serverPublicKey);
    if (!this.serverPublicKey) {
      // First contact pins the server key (trust on first use, like an SSH host key).
      this.serverPublicKey = presented;
      await this.saveHighWater();
    } else if (toB64(this.serverPublicKey) !== m.serverPublicKey) {
      this.emit({
        type: 'server-error',
        code: 'BAD_SIGNATURE',
        message: 'server key differs from the pinned one; refusing',
      });
      link.ws?.close();
      return;
    }
    const time = SignedTime.safeParse(openSignedJson('time', m.time, this.serverPublicKey));
    if (time.success && time.data.nonce === m.nonce) {
      this.trusted.observeServerTime(time.data.t);
      await this.saveHighWater();
    }
    link.nonce = fromB64(m.nonce);
    link.authId = this.nextId++;
    const signature = signDetached(
      'terminal-auth',
      concatBytes(link.nonce, this.identity.signPublicKey),
      this.identity.signSecretKey,
    );
    this.send(link, {
      type: 'terminal.auth',
      id: link.authId,
      signPublicKey: toB64(this.identity.signPublicKey),
      signature: toB64(signature),
      kind: this.opts.kind,
      name: this.opts.name,
      pushedOffers: true,
    });
  }

  private onWelcome(link: Link, w: TerminalWelcome): void {
    link.backoffMs = 250;
    this.emit({ type: 'connected', url: link.url });
    if (!link.primary) return;
    this.guard(this.flushImpressions());
    this.linked = w.linked;
    this.pairingCode = w.pairingCode;
    this.schedulePairingRefresh(w.pairingExpiresAt);
    this.emit({ type: 'welcome', ...w });
    for (const url of w.contentUrls) if (!this.links.has(url)) this.connect(url, false);
  }

  // ------------------------------------------------------------ content

  /** Why an offer cannot be taken whatever this terminal holds, if it cannot. */
  private offerLayoutProblem(m: DeliveryOffer): string | undefined {
    const maxChunk = this.opts.maxChunkSize ?? 1024 * 1024;
    if (m.chunkSize > maxChunk || m.totalChunks !== chunkCount(m.size, m.chunkSize))
      return 'offer has an invalid chunk layout';
    return undefined;
  }

  /**
   * The rental an offer makes: the one on record if it has the same layout (a resume), else a new
   * one, recorded (not durably: if it is lost, the server offers again). Throws OfferRefused with the
   * reason when the offer is to be refused.
   */
  private async takeUpOffer(m: DeliveryOffer): Promise<{ rental: StoredRental; existing: boolean }> {
    const existing = await this.opts.storage.rental(m.orderId);
    if (existing?.expired) throw new OfferRefused('rental already expired here');
    const now = this.trusted.now();
    if (now.ok && now.now >= m.notAfter) throw new OfferRefused('rental period already over');
    if (existing && existing.size === m.size && existing.chunkSize === m.chunkSize)
      return { rental: existing, existing: true };
    const rental = rentalOf(m);
    await this.opts.storage.putRental(rental, { durable: false });
    return { rental, existing: false };
  }

  private newDownload(link: Link, rental: StoredRental): Download {
    return {
      link,
      rental,
      chain: Promise.resolve(),
      incoming: [],
      queued: 0,
      sinceReport: 0,
      lastReportAt: Date.now(),
      failed: false,
      syncAgain: false,
    };
  }

  /** Tell the server, and this terminal's user, that an offer is refused and why. */
  private refuseOffer(link: Link, orderId: string, reason: string): void {
    this.send(link, { type: 'delivery.reject', orderId, reason });
    this.emit({ type: 'rejected', orderId, reason });
  }

  private async onOffer(link: Link, m: DeliveryOffer): Promise<void> {
    const problem = this.offerLayoutProblem(m);
    if (problem) return this.refuseOffer(link, m.orderId, problem);
    await this.writeChains.get(m.orderId);
    let taken: Awaited<ReturnType<TerminalCore['takeUpOffer']>>;
    try {
      taken = await this.takeUpOffer(m);
    } catch (err) {
      if (err instanceof OfferRefused) return this.refuseOffer(link, m.orderId, err.message);
      throw err;
    }
    const { rental, existing } = taken;
    if (!existing) this.emit({ type: 'offer', rental, from: link.url });
    this.scheduleExpiry(rental.orderId, rental.notAfter);
    this.downloads.set(m.orderId, this.newDownload(link, rental));
    // A pre-roll is kept only for a rental on record, so a new one has none yet.
    const hasPreroll = existing ? Boolean(await this.opts.storage.preroll(m.orderId)) : false;
    this.send(link, { type: 'delivery.accept', orderId: m.orderId, from: rental.have, hasPreroll });
    if (rental.have >= rental.totalChunks) this.emit({ type: 'stored', orderId: m.orderId });
  }

  /**
   * An offer whose chunks follow at once (DeliveryOffer.pushed). The download is set up within this
   * message's turn, so chunks that came in the same read are kept; they are written once the rental
   * is on record. No accept: a terminal that holds chunks of this order already reports them, and
   * the server goes on from there (resent chunks it holds are dropped unwritten).
   */
  private onPushedOffer(link: Link, m: DeliveryOffer): void {
    const d = this.newDownload(link, rentalOf(m));
    const problem = this.offerLayoutProblem(m);
    if (problem) {
      this.refusePushed(link, d, problem);
      return;
    }
    const before = this.writeChains.get(m.orderId);
    this.downloads.set(m.orderId, d);
    d.chain = (async () => {
      await before;
      const { rental, existing } = await this.takeUpOffer(m);
      d.rental = rental;
      if (!existing) this.emit({ type: 'offer', rental, from: link.url });
      this.scheduleExpiry(rental.orderId, rental.notAfter);
      if (rental.have > 0) {
        this.send(link, { type: 'delivery.progress', orderId: m.orderId, have: rental.have });
        if (rental.have >= rental.totalChunks) this.emit({ type: 'stored', orderId: m.orderId });
      }
    })().catch((err: unknown) => {
      if (err instanceof OfferRefused) return this.refusePushed(link, d, err.message);
      this.refusePushed(link, d, 'storage failed');
      this.guard(Promise.reject(err));
    });
  }

  /**
   * A pushed offer refused: its chunks are dropped. A method, not a closure per offer: under tsx
   * each named closure costs a defineProperty (BENCHMARKS.md).
   */
  private refusePushed(link: Link, d: Download, reason: string): void {
    const orderId = d.rental.orderId;
    d.failed = true;
    this.dropUnwritten(d);
    if (this.downloads.get(orderId) === d) this.downloads.delete(orderId);
    this.refuseOffer(link, orderId, reason);
  }

  private onChunk(link: Link, frame: Uint8Array, recycle?: (data: Uint8Array) => void): void {
    const f = decodeChunkFrame(frame);
    const d = f && this.downloads.get(f.orderId);
    if (!f || !d || d.link !== link || d.failed) {
      recycle?.(frame);
      return;
    }
    // No copy: every message arrives in a buffer of its own (a browser's: new per message; the
    // headless terminal's: from a pool, handed back once written).
    d.incoming.push({ index: f.index, cipher: f.cipher, recycle });
    d.queued += f.cipher.length;
    arrived(link.ws, f.cipher.length);
    // Chunks that arrive while a write is under way go together in the next one (one writev, not one
    // write per chunk): the socket is drained as fast as the disk takes batches.
    if (d.incoming.length > 1) return;
    d.chain = d.chain
      .then(() => (d.failed ? undefined : this.storeBatch(d)))
      .catch((err) => {
        d.failed = true;
        this.dropUnwritten(d);
        this.send(link, { type: 'delivery.reject', orderId: d.rental.orderId, reason: 'storage failed' });
        this.emit({ type: 'rejected', orderId: d.rental.orderId, reason: `storage failed: ${String(err)}` });
      });
    // A resumed download of this order waits for these writes and their last sync before reading storage.
    this.writeChains.set(
      f.orderId,
      d.chain.then(() => d.syncing),
    );
  }

  /** Write what has arrived, a batch at a time (at most a progress report's worth, so reports keep coming). */
  private async storeBatch(d: Download): Promise<void> {
    // Storage without batched writes takes one chunk at a time, each counted as soon as it is written.
    const most = this.opts.storage.writeChunks
      ? Math.max(1, Math.min(this.opts.progressEvery ?? 64, WRITE_BATCH_CHUNKS))
      : 1;
    while (d.incoming.length && !d.failed) {
      const batch = d.incoming.splice(0, most);
      try {
        await this.storeSome(d, batch);
      } finally {
        // Written or failed, the write is over: nothing reads these buffers any more.
        recycleAll(batch);
      }
      this.written(
        d,
        batch.reduce((n, c) => n + c.cipher.length, 0),
      );
    }
  }

  /**
   * Received bytes leave the process's unwritten budget (unwritten-budget.ts) once written, or all
   * at once when the download stops. The budget bounds the memory a disk slower than the network
   * can fill: without it, up to the server's whole window per delivery (32 MiB each), every byte in
   * memory new to the process.
   */
  private written(d: Download, bytes: number): void {
    const n = Math.min(bytes, d.queued); // nothing twice: a dropped download has released it all
    d.queued -= n;
    released(n);
  }
  private dropUnwritten(d: Download): void {
    recycleAll(d.incoming);
    d.incoming = [];
    this.written(d, d.queued);
  }

  private async storeSome(d: Download, arrived: Download['incoming']): Promise<void> {
    const r = d.rental;
    const batch = arrived.filter((c) => c.index >= r.have); // resends of stored chunks drop out
    if (batch.length === 0) return;
    for (const [k, { index, cipher }] of batch.entries()) {
      if (index !== r.have + k)
        throw new Error(`chunk ${index} arrived out of order (expected ${r.have + k})`);
      if (cipher.length !== cipherChunkLength(plainChunkLength(r.size, r.chunkSize, index)))
        throw new Error(`chunk ${index} has the wrong length`);
    }
    const storage = this.opts.storage;
    if (storage.storeWhole && r.have === 0 && batch.length === r.totalChunks && !d.syncing) {
      // The whole title at once (a small one): written, synced and recorded in one step.
      await storage.storeWhole(
        { ...r, have: r.totalChunks },
        batch.map((c) => c.cipher),
      );
      r.have = r.totalChunks;
      if (!d.failed) this.reportStored(d, r.have);
      return;
    }
    if (storage.writeChunks && batch.length > 1)
      await storage.writeChunks(
        r,
        r.have,
        batch.map((c) => c.cipher),
      );
    else await storage.writeChunk(r, r.have, (batch[0] as (typeof batch)[number]).cipher);
    r.have += batch.length;
    d.sinceReport += batch.length;
    const done = r.have === r.totalChunks;
    const due = Date.now() - d.lastReportAt >= PROGRESS_INTERVAL_MS;
    if (done || due || d.sinceReport >= (this.opts.progressEvery ?? 64)) {
      d.sinceReport = 0;
      d.lastReportAt = Date.now();
      this.requestSync(d);
    }
  }

  /**
   * Make what is written durable, record it, then report it: chunks 0..have-1 are acknowledged only
   * once synced. It runs beside the writing (which does not wait for it), so the link stays busy.
   */
  private requestSync(d: Download): void {
    if (d.syncing) {
      d.syncAgain = true;
      return;
    }
    const r = d.rental;
    d.syncing = (async () => {
      do {
        d.syncAgain = false;
        const upto = r.have;
        await this.opts.storage.flush(r.orderId);
        await this.opts.storage.putRental({ ...r, have: upto });
        if (d.failed) return;
        this.reportStored(d, upto);
      } while (d.syncAgain);
    })()
      .catch((err) => {
        d.failed = true;
        this.dropUnwritten(d);
        this.send(d.link, { type: 'delivery.reject', orderId: r.orderId, reason: 'storage failed' });
        this.emit({ type: 'rejected', orderId: r.orderId, reason: `storage failed: ${String(err)}` });
      })
      .finally(() => {
        d.syncing = undefined;
      });
  }

  /** Chunks 0..upto-1 are durable and recorded: tell the server and the terminal's owner. */
  private reportStored(d: Download, upto: number): void {
    const r = d.rental;
    this.send(d.link, { type: 'delivery.progress', orderId: r.orderId, have: upto });
    this.emit({
      type: 'progress',
      orderId: r.orderId,
      have: upto,
      total: r.totalChunks,
      bytes: Math.min(r.size, upto * r.chunkSize),
      size: r.size,
    });
    if (upto === r.totalChunks) {
      this.downloads.delete(r.orderId);
      // Nothing more is written for it, and its record says so: a later offer need not wait. Kept
      // until expiry, every order's chain stayed in the map (and was copied with it, ChurnMap).
      this.writeChains.delete(r.orderId);
      this.emit({ type: 'stored', orderId: r.orderId });
    }
  }

  /** A pre-roll is kept only if the pinned server signed it for this order and this exact creative. */
  private async onPreroll(m: ServerMessageOf<'delivery.preroll'>): Promise<void> {
    let preroll: Preroll;
    const creative = fromB64(m.creative);
    try {
      if (!this.serverPublicKey) throw new RentalError('BAD_SIGNATURE', 'no pinned server key');
      preroll = verifyPreroll(m.preroll, creative, this.serverPublicKey, m.orderId);
    } catch (err) {
      return this.emit({
        type: 'rejected',
        orderId: m.orderId,
        reason: `pre-roll refused: ${(err as Error).message}`,
      });
    }
    const r = await this.opts.storage.rental(m.orderId);
    if (!r || r.expired || (await this.opts.storage.preroll(m.orderId))) return;
    await this.opts.storage.putPreroll(m.orderId, { envelope: m.preroll, creative, played: false });
    this.emit({ type: 'preroll', orderId: m.orderId, adId: preroll.adId, text: preroll.text });
  }

  // ------------------------------------------------------------ licences and expiry

  private async onLicence(link: Link, m: ServerMessageOf<'licence.deliver'>): Promise<void> {
    let licence: Licence;
    try {
      if (!this.serverPublicKey) throw new RentalError('BAD_SIGNATURE', 'no pinned server key');
      licence = verifyLicence(m.licence, this.serverPublicKey, this.terminalId);
      if (licence.orderId !== m.orderId)
        throw new RentalError('BAD_SIGNATURE', 'licence is for another order');
      // The key is not unsealed here, only when the rental plays: the signature covers the sealed
      // key, and the terminal id it names is the hash of the very key the seal is made to, so a
      // licence that verifies is sealed to this terminal. Unsealing it on arrival too cost a scalar
      // multiplication per licence (15 % of the terminals' event loop in the orders benchmark).
    } catch (err) {
      return this.emit({ type: 'rejected', orderId: m.orderId, reason: (err as Error).message });
    }
    // issuedAt is server-signed: time is at least that now.
    this.trusted.highWater = Math.max(this.trusted.highWater, licence.issuedAt);
    const now = this.trusted.now();
    if (now.ok && now.now >= licence.notAfter) {
      this.send(link, { type: 'licence.ack', orderId: m.orderId });
      return this.expire(m.orderId);
    }
    await this.opts.storage.putLicence(m.orderId, m.licence);
    this.scheduleExpiry(m.orderId, licence.notAfter);
    this.send(link, { type: 'licence.ack', orderId: m.orderId });
    this.emit({
      type: 'licence',
      orderId: m.orderId,
      notBefore: licence.notBefore,
      notAfter: licence.notAfter,
    });
  }

  private scheduleExpiry(orderId: string, notAfter: number): void {
    const had = this.expiryTimers.get(orderId);
    const now = this.trusted.now();
    const wait = notAfter - (now.ok ? now.now : this.clock.now());
    // Re-check at least hourly: timers drift, and setTimeout caps at ~24.8 days.
    const delay = Math.min(wait, 3_600_000);
    const firesAt = performance.now() + delay;
    // The same end asked again (an offer, then its licence), and the clock as it was: the timer
    // stands. Replacing it cost a timer list of its own per rental (each waits a different time).
    if (wait > 0 && had?.notAfter === notAfter && Math.abs(had.firesAt - firesAt) < 1000) return;
    clearTimeout(had?.timer);
    if (wait <= 0) {
      this.guard(this.expire(orderId));
      return;
    }
    const timer = setTimeout(() => {
      this.expiryTimers.delete(orderId); // fired: whatever comes next is set anew
      this.scheduleExpiry(orderId, notAfter);
    }, delay);
    (timer as { unref?: () => void }).unref?.();
    this.expiryTimers.set(orderId, { timer, notAfter, firesAt });
  }

  private async expire(orderId: string): Promise<void> {
    clearTimeout(this.expiryTimers.get(orderId)?.timer);
    this.expiryTimers.delete(orderId);
    const d = this.downloads.get(orderId);
    if (d) {
      d.failed = true; // nothing more is written for an expired rental
      this.dropUnwritten(d);
    }
    this.downloads.delete(orderId);
    this.writeChains.delete(orderId);
    const r = await this.opts.storage.rental(orderId);
    if (r?.expired) return;
    await this.opts.storage.wipe(orderId);
    this.emit({ type: 'expired', orderId });
  }

  private async saveHighWater(): Promise<void> {
    await this.opts.storage.saveState({
      highWater: this.trusted.highWater,
      serverPublicKey: this.serverPublicKey ? toB64(this.serverPublicKey) : null,
    });
  }
}
