/**
 * The content store's delivery engine. On a delivery instruction it encrypts the title for that one
 * order, a block of chunks at a time, and pushes it to the terminal. Memory stays bounded: a few
 * blocks are read and encrypted ahead of the socket, at most a window of chunks is unacknowledged,
 * and sending pauses while the socket's buffer is full. The terminal says which chunk to start
 * from, so a broken transfer (or a restarted server) resumes where the terminal's storage left off;
 * a new delivery starts from the first chunk without asking (DeliveryOffer.pushed).
 */
import { ChurnMap } from '../../shared/churn-map.ts';
import { chunkCount, plainChunkLength, type SignedEnvelope } from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import type { ContentState } from '../../shared/protocol.ts';
import type { Conn, ConnectionHub } from '../connection-hub.ts';
import { log } from '../log.ts';
import type { Repository } from '../store/repository.ts';
import { blockSealer, SealerGone } from './block-sealer.ts';
import { chunkMessageBytes, FramePool, layoutBlock, writeChunkMessage } from './chunk-cipher.ts';
import type { MediaStore } from './media-store.ts';
import type { TitleReader } from './title-objects.ts';

/** What the key server tells the content store (claim 21: item number and terminal address). */
export interface DeliveryInstruction {
  orderId: string;
  itemNumber: number;
  terminalId: string;
  contentKey: Uint8Array;
  /** When the key is released (the window opens): lets the terminal say when it will be playable. */
  notBefore: number;
  notAfter: number;
  /**
   * The delivery starts as its order is placed (nothing of it can be on the terminal yet): its chunks
   * may follow the offer at once. Never set on a delivery started again.
   */
  fresh?: boolean;
  /** The signed pre-roll the key server chose for this order, sent before the title (claims 14/20/26). */
  preroll?: PrerollAttachment;
}

export interface PrerollAttachment {
  envelope: SignedEnvelope;
  creative: Uint8Array;
}

export interface DeliveryStatus {
  orderId: string;
  have: number;
  total: number;
  state: ContentState;
}

/** How the key server reaches a content store, in-process or over the peer link. */
export interface ContentDispatcher {
  instruct(instruction: DeliveryInstruction): void;
  cancel(orderId: string): void;
}

interface Session {
  conn: Conn;
  have: number;
  total: number;
  accepted?: (from: number, hasPreroll: boolean) => void;
  wake?: () => void;
  cancelled: boolean;
  lastReport: number;
}

const ACCEPT_TIMEOUT_MS = 30_000;
/** Chunks read from disk at a time (8 × 64 KiB), and sent in one write. */
export const READ_AHEAD_CHUNKS = 8;
/** Blocks read ahead of the one being sent: the file system's latency hides behind the CPU's work. */
const READ_AHEAD_BLOCKS = 4;
/** Idle blocks of chunk messages kept for reuse across deliveries (8 MiB). */
const IDLE_SEND_BLOCKS = 16;
/** Idle plaintext blocks (of blocks read and encrypted on the event loop) kept for reuse (8 MiB). */
const IDLE_BLOCKS = 16;
/**
 * Memory all running deliveries share for read-ahead blocks and frames waiting in their sockets'
 * buffers. One delivery gets the most per-delivery bounds allow (four blocks ahead, 1 MiB in its
 * socket); fifty get one block and a third of a MiB each, not 150 MB between them: the kernel's
 * socket buffers carry them across their turns, and new memory costs a page fault per 4 KiB.
 */
const SHARED_BUFFER_BYTES = 32 * 1024 * 1024;
const MIN_SOCKET_BYTES = 256 * 1024;
/** A terminal that stays connected but stops reporting progress this long is treated as gone. */
const STALL_TIMEOUT_MS = 60_000;
const REPORT_EVERY_MS = 200;

/** Deliveries take turns sending a block each, first come first served. */
class SendTurns {
  private readonly waiting: (() => void)[] = [];
  private busy = false;
  /** Resolves with this delivery's turn; call the function returned when its block is sent. */
  async take(): Promise<() => void> {
    if (this.busy) await new Promise<void>((r) => this.waiting.push(r));
    this.busy = true;
    return () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy = false;
    };
  }
}

export class ContentDelivery implements ContentDispatcher {
  private readonly turns = new SendTurns();
  // ChurnMaps: a delivery's entries come and go many times a second (see shared/churn-map.ts).
  private readonly pending = new ChurnMap<string, DeliveryInstruction>();
  private readonly sessions = new ChurnMap<string, Session>();
  private readonly sendBlocks = new FramePool(
    READ_AHEAD_CHUNKS * chunkMessageBytes(LIMITS.chunkSize),
    IDLE_SEND_BLOCKS,
  );
  private readonly blocks = new FramePool(READ_AHEAD_CHUNKS * LIMITS.chunkSize, IDLE_BLOCKS);

  /** A delivery's share of SHARED_BUFFER_BYTES: half for blocks prepared ahead of its socket, half for the socket. */
  private share(): number {
    return SHARED_BUFFER_BYTES / 2 / Math.max(1, this.sessions.size);
  }
  private readAheadDepth(): number {
    const blocks = Math.floor(this.share() / (READ_AHEAD_CHUNKS * LIMITS.chunkSize));
    return Math.max(1, Math.min(READ_AHEAD_BLOCKS, blocks));
  }
  private socketShare(): number {
    return Math.max(MIN_SOCKET_BYTES, Math.min(LIMITS.maxSocketBufferedBytes, this.share()));
  }

  constructor(
    private readonly hub: ConnectionHub,
    private readonly repo: Repository,
    private readonly media: MediaStore,
    private readonly report: (status: DeliveryStatus) => void,
    /** Optional cap per delivery (bytes/s), so one order cannot take all of the uplink. */
    private readonly maxBytesPerSecond = 0,
  ) {
    hub.on('terminal-online', (conn) => {
      for (const instr of this.pending.values()) {
        if (instr.terminalId !== conn.terminalId) continue;
        // A session still bound to the terminal's previous (replaced) connection is dead.
        const old = this.sessions.get(instr.orderId);
        if (old && old.conn !== conn) this.stop(instr.orderId);
        this.start(instr);
      }
    });
    // Every closed connection, including one replaced by the same terminal reconnecting (which
    // does not count as the terminal going offline).
    hub.on('conn-closed', (conn) => {
      for (const [orderId, s] of this.sessions.entries()) {
        if (s.conn === conn) {
          this.stop(orderId);
          this.report({ orderId, have: s.have, total: s.total, state: 'waiting-terminal' });
        }
      }
    });
    hub.handle('delivery.accept', async (conn, m) => {
      const s = this.sessionFor(conn, m.orderId);
      s.accepted?.(m.from, m.hasPreroll ?? false);
      return {};
    });
    hub.handle('delivery.progress', async (conn, m) => {
      const s = this.sessionFor(conn, m.orderId);
      if (m.have > s.total) throw new RentalError('BAD_MESSAGE', 'progress beyond the last chunk');
      s.have = Math.max(s.have, m.have);
      s.wake?.();
      return {};
    });
    hub.handle('delivery.reject', async (conn, m) => {
      this.sessionFor(conn, m.orderId);
      log('warn', 'delivery-rejected', { orderId: m.orderId, reason: m.reason });
      this.stop(m.orderId);
      return {};
    });
  }

  instruct(instr: DeliveryInstruction): void {
    // Started again when the terminal comes back: by then it may hold chunks, so it is asked.
    this.pending.set(instr.orderId, { ...instr, fresh: false });
    this.start(instr);
  }

  cancel(orderId: string): void {
    this.pending.delete(orderId);
    this.stop(orderId);
  }

  /** Orders being delivered right now (for status pages and tests). */
  active(): string[] {
    return this.sessions.keys();
  }

  private sessionFor(conn: Conn, orderId: string): Session {
    const s = this.sessions.get(orderId);
    // Another terminal's order is reported exactly like an unknown one.
    if (!s || s.conn !== conn)
      throw new RentalError('NOT_FOUND', 'no delivery of that order to this terminal');
    return s;
  }

  private stop(orderId: string) {
    const s = this.sessions.get(orderId);
    if (!s) return;
    s.cancelled = true;
    s.wake?.();
    s.accepted?.(-1, false);
    this.sessions.delete(orderId);
  }

  private start(instr: DeliveryInstruction) {
    const conn = this.hub.terminal(instr.terminalId);
    if (!conn || this.sessions.has(instr.orderId)) return;
    if (Date.now() >= instr.notAfter) {
      this.pending.delete(instr.orderId);
      return;
    }
    const s: Session = { conn, have: 0, total: 1, cancelled: false, lastReport: 0 };
    this.sessions.set(instr.orderId, s);
    this.run(instr, s).catch((err) => {
      log('warn', 'delivery-interrupted', { orderId: instr.orderId, error: String(err) });
      if (this.sessions.get(instr.orderId) === s) this.sessions.delete(instr.orderId);
    });
  }

  /** Once the terminal has the offer (at once, or with the first block when pushed): pre-roll, report. */
  private started(instr: DeliveryInstruction, s: Session, pushed: boolean, hasPreroll: boolean): void {
    log('info', 'delivery-started', { orderId: instr.orderId, from: s.have, total: s.total, pushed });
    if (instr.preroll && !hasPreroll) {
      // Ahead of the first chunk on the same socket, so it is stored before the title can be.
      s.conn.send({
        type: 'delivery.preroll',
        orderId: instr.orderId,
        preroll: instr.preroll.envelope,
        creative: Buffer.from(instr.preroll.creative).toString('base64url'),
      });
    }
    this.report({ orderId: instr.orderId, have: s.have, total: s.total, state: 'delivering' });
  }

  private async run(instr: DeliveryInstruction, s: Session): Promise<void> {
    const item = await this.repo.catalogItem(instr.itemNumber);
    if (!item) throw new Error(`item ${instr.itemNumber} is not in the catalog`);
    const chunkSize = LIMITS.chunkSize;
    const total = chunkCount(item.size, chunkSize);
    s.total = total;
    const offer = {
      type: 'delivery.offer',
      orderId: instr.orderId,
      itemNumber: item.itemNumber,
      title: item.title,
      mimeType: item.mimeType,
      size: item.size,
      chunkSize,
      totalChunks: total,
      notBefore: instr.notBefore,
      notAfter: instr.notAfter,
    } as const;
    // A new delivery to a terminal that takes pushed offers does not wait for its accept: the offer
    // goes out with the first block (below), a round trip sooner, and one message fewer each way.
    // Resumes still ask the terminal where to start.
    const pushed = instr.fresh === true && s.conn.pushedOffers === true;
    let hasPreroll = false;
    const from = pushed
      ? 0
      : await new Promise<number>((resolve) => {
          // Cleared on an answer: a pending timer holds the whole delivery's state for 30 s, and at
          // 1,000 orders/s that was 30,000 of them, a 100 MB heap and a 26-58 ms full GC every 250 ms.
          const timer = setTimeout(() => resolve(-1), ACCEPT_TIMEOUT_MS);
          timer.unref();
          s.accepted = (at, has) => {
            clearTimeout(timer);
            hasPreroll = has;
            resolve(at);
          };
          s.conn.send(offer);
        });
    s.accepted = undefined;
    if (s.cancelled || from < 0) throw new Error('terminal did not accept the delivery');
    s.have = Math.min(from, total);
    let offerPending = pushed;
    if (!pushed) this.started(instr, s, pushed, hasPreroll);
    const fh = await this.media.titles.open(item.mediaFile);
    // The next few blocks are read and sealed while the socket takes the one before them: the file
    // system, the cipher and the socket overlap. Each resolves to a block of whole chunk messages.
    const preparing: Promise<Buffer>[] = [];
    let next = s.have; // the first chunk of the next block to prepare
    let lastSend: Promise<void> = Promise.resolve();
    const unsent: Promise<void>[] = []; // the last send of each block, oldest first
    const startedAt = Date.now();
    let sent = 0;
    try {
      while (!s.cancelled && (next < total || preparing.length > 0)) {
        // A terminal that already held chunks of a pushed delivery said so: go on from there.
        if (next < s.have) next = s.have;
        if (next < total && preparing.length < this.readAheadDepth()) {
          // Blocks start where the terminal's stored chunks end; none goes past its window.
          const end = Math.min(total, next + READ_AHEAD_CHUNKS);
          if (end - 1 - s.have < LIMITS.deliveryWindowChunks) {
            const block = this.prepareBlock(instr, item.size, total, fh, next, end);
            block.catch(() => undefined); // awaited in turn below, unless the delivery stops first
            preparing.push(block);
            next = end;
            continue;
          }
          if (preparing.length === 0) {
            await this.waitForProgress(s, instr);
            continue;
          }
        }
        const block = await (preparing.shift() as Promise<Buffer>);
        if (s.cancelled) {
          this.sendBlocks.give(block);
          break;
        }
        if (offerPending) {
          // In this turn, so offer, pre-roll and block leave in one write (the socket is corked).
          offerPending = false;
          // `pushed` first: a property added after a spread gives each object a map of its own (V8
          // 11), made and later collected in the old generation (see BENCHMARKS.md).
          s.conn.send({ pushed: true, ...offer });
          this.started(instr, s, pushed, hasPreroll);
        }
        lastSend = s.conn.sendFramed(block);
        // Only the latest send is awaited; an earlier one failing means the connection closed,
        // which the close handler deals with. Do not leave its rejection unhandled. Once the
        // socket has taken the block, its buffer serves a later one.
        lastSend.then(
          () => this.sendBlocks.give(block),
          () => undefined,
        );
        sent += block.length;
        // Back-pressure without a bubble: wait for the oldest block still in the socket's buffer,
        // not the newest, so the buffer is never drained empty before encryption resumes.
        unsent.push(lastSend);
        if (unsent.length > 64) unsent.shift(); // long settled: the socket took them
        const socketBytes = this.socketShare();
        while (s.conn.ws.bufferedAmount > socketBytes && unsent.length > 0) await unsent.shift();
        if (this.maxBytesPerSecond > 0) {
          const ahead = (sent / this.maxBytesPerSecond) * 1000 - (Date.now() - startedAt);
          if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
        }
      }
      await lastSend;
      while (!s.cancelled && s.have < total) await this.waitForProgress(s, instr);
    } finally {
      // No read or seal may still be using the title, nor a buffer given back.
      for (const r of await Promise.allSettled(preparing))
        if (r.status === 'fulfilled') this.sendBlocks.give(r.value);
      await fh.close();
    }
    if (s.cancelled) return;
    this.sessions.delete(instr.orderId);
    this.pending.delete(instr.orderId);
    log('info', 'delivery-complete', { orderId: instr.orderId, chunks: total });
    this.report({ orderId: instr.orderId, have: total, total, state: 'delivered' });
  }

  /**
   * Chunks `first` to `end` (exclusive) as one buffer of whole WebSocket messages, which leaves in one
   * write. A full block of a title on local disk is read and sealed on a sealing thread
   * (block-sealer.ts); anything else (a title's short last block, a small title, a title in an
   * object store, no sodium-native) is read and encrypted here, deliveries taking turns.
   */
  private async prepareBlock(
    instr: DeliveryInstruction,
    size: number,
    total: number,
    title: TitleReader,
    first: number,
    end: number,
  ): Promise<Buffer> {
    const chunkSize = LIMITS.chunkSize;
    const start = first * chunkSize;
    const plainBytes = Math.min(size, end * chunkSize) - start;
    if (title.fd !== undefined && plainBytes === READ_AHEAD_CHUNKS * chunkSize && blockSealer.available) {
      const out = this.sendBlocks.take(READ_AHEAD_CHUNKS * chunkMessageBytes(chunkSize));
      const { fields, ads } = layoutBlock(out, chunkSize, instr.orderId, first, READ_AHEAD_CHUNKS, total);
      try {
        return await blockSealer.seal({
          fd: title.fd,
          position: start,
          plainBytes,
          out,
          fields,
          ads,
          key: instr.contentKey,
        });
      } catch (err) {
        if (!(err instanceof SealerGone)) throw err;
        // The block went with the thread: read and seal it here.
      }
    }
    const plain = this.blocks.take(plainBytes);
    try {
      if ((await title.read(plain.subarray(0, plainBytes), start)) !== plainBytes)
        throw new Error(`the media file of order ${instr.orderId}'s title is shorter than catalogued`);
      const release = await this.turns.take();
      try {
        let bytes = 0;
        for (let i = first; i < end; i++) bytes += chunkMessageBytes(plainChunkLength(size, chunkSize, i));
        const block = this.sendBlocks.take(bytes);
        let at = 0;
        for (let i = first; i < end; i++) {
          const from = (i - first) * chunkSize;
          const chunk = plain.subarray(from, from + plainChunkLength(size, chunkSize, i));
          at += writeChunkMessage(block, at, instr.contentKey, chunk, instr.orderId, i, total);
        }
        return block;
      } finally {
        release();
      }
    } finally {
      this.blocks.give(plain);
    }
  }

  private async waitForProgress(s: Session, instr: DeliveryInstruction) {
    const progressed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), STALL_TIMEOUT_MS);
      timer.unref();
      s.wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    s.wake = undefined;
    if (!progressed && !s.cancelled) {
      log('warn', 'delivery-stalled', { orderId: instr.orderId, have: s.have });
      this.stop(instr.orderId);
      this.report({ orderId: instr.orderId, have: s.have, total: s.total, state: 'waiting-terminal' });
      return;
    }
    const now = Date.now();
    // The last chunk's progress is not reported on its own: the delivery's completion follows at once.
    if (now - s.lastReport >= REPORT_EVERY_MS && s.have < s.total) {
      s.lastReport = now;
      this.report({ orderId: instr.orderId, have: s.have, total: s.total, state: 'delivering' });
    }
  }
}
