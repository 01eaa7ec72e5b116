/**
 * The content store's delivery engine. On a delivery instruction it encrypts the title for that one
 * order, chunk by chunk, and pushes it to the terminal. Memory stays bounded: one chunk is read,
 * encrypted and sent at a time, at most a window of chunks is unacknowledged, and sending pauses
 * while the socket's buffer is full. The terminal says which chunk to start from, so a broken
 * transfer (or a restarted server) resumes where the terminal's storage left off.
 */
import { chunkCount, plainChunkLength, type SignedEnvelope } from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import type { ContentState } from '../../shared/protocol.ts';
import type { Conn, ConnectionHub } from '../connection-hub.ts';
import { log } from '../log.ts';
import type { Repository } from '../store/repository.ts';
import { chunkMessageBytes, FramePool, writeChunkMessage } from './chunk-cipher.ts';
import type { MediaStore } from './media-store.ts';

/** What the key server tells the content store (claim 21: item number and terminal address). */
export interface DeliveryInstruction {
  orderId: string;
  itemNumber: number;
  terminalId: string;
  contentKey: Uint8Array;
  /** When the key is released (the window opens): lets the terminal say when it will be playable. */
  notBefore: number;
  notAfter: number;
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
/** Chunks read from disk at a time (8 × 64 KiB). */
const READ_AHEAD_CHUNKS = 8;
/** Blocks read ahead of the one being sent: the file system's latency hides behind the CPU's work. */
const READ_AHEAD_BLOCKS = 4;
/** Idle blocks of chunk messages kept for reuse across deliveries (8 MiB). */
const IDLE_SEND_BLOCKS = 16;
/** Idle read-ahead blocks kept for reuse across deliveries (8 MiB). */
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
  private readonly pending = new Map<string, DeliveryInstruction>();
  private readonly sessions = new Map<string, Session>();
  private readonly sendBlocks = new FramePool(
    READ_AHEAD_CHUNKS * chunkMessageBytes(LIMITS.chunkSize),
    IDLE_SEND_BLOCKS,
  );
  private readonly blocks = new FramePool(READ_AHEAD_CHUNKS * LIMITS.chunkSize, IDLE_BLOCKS);

  /** A delivery's share of SHARED_BUFFER_BYTES: half for reading ahead, half for its socket. */
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
      for (const [orderId, s] of this.sessions) {
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
    this.pending.set(instr.orderId, instr);
    this.start(instr);
  }

  cancel(orderId: string): void {
    this.pending.delete(orderId);
    this.stop(orderId);
  }

  /** Orders being delivered right now (for status pages and tests). */
  active(): string[] {
    return [...this.sessions.keys()];
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

  private async run(instr: DeliveryInstruction, s: Session): Promise<void> {
    const item = await this.repo.catalogItem(instr.itemNumber);
    if (!item) throw new Error(`item ${instr.itemNumber} is not in the catalog`);
    const chunkSize = LIMITS.chunkSize;
    const total = chunkCount(item.size, chunkSize);
    s.total = total;
    let hasPreroll = false;
    const from = await new Promise<number>((resolve) => {
      // Cleared on an answer: a pending timer holds the whole delivery's state for 30 s, and at
      // 1,000 orders/s that was 30,000 of them, a 100 MB heap and a 26-58 ms full GC every 250 ms.
      const timer = setTimeout(() => resolve(-1), ACCEPT_TIMEOUT_MS);
      timer.unref();
      s.accepted = (at, has) => {
        clearTimeout(timer);
        hasPreroll = has;
        resolve(at);
      };
      s.conn.send({
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
      });
    });
    s.accepted = undefined;
    if (s.cancelled || from < 0) throw new Error('terminal did not accept the delivery');
    s.have = Math.min(from, total);
    log('info', 'delivery-started', { orderId: instr.orderId, from: s.have, total });
    if (instr.preroll && !hasPreroll) {
      // Ahead of the first chunk on the same socket, so it is stored before the title can be.
      s.conn.send({
        type: 'delivery.preroll',
        orderId: instr.orderId,
        preroll: instr.preroll.envelope,
        creative: Buffer.from(instr.preroll.creative).toString('base64url'),
      });
    }
    this.report({ orderId: instr.orderId, have: s.have, total, state: 'delivering' });
    const fh = await this.media.titles.open(item.mediaFile);
    // Read ahead in blocks of chunks, the next blocks while this one is encrypted and sent: the file
    // system and the CPU overlap. Block buffers come from a pool all deliveries share, and go back
    // to it once the delivery ends and no read is still filling them.
    const owned: Buffer[] = [];
    const readBlock = (first: number, reuse?: Buffer): Promise<Buffer> => {
      const start = first * chunkSize;
      const bytes = Math.min(item.size, (first + READ_AHEAD_CHUNKS) * chunkSize) - start;
      // A full block from the shared pool; a title's short last block (all of a small title) only
      // the bytes it needs: a 512 KiB block per order of a 1 KiB title was 6 % of the server's time.
      let full = reuse && reuse.length >= bytes ? reuse : undefined;
      if (!full) {
        full = this.blocks.take(bytes);
        owned.push(full);
      }
      const p = fh.read(full.subarray(0, bytes), start).then((bytesRead) => {
        if (bytesRead !== bytes)
          throw new Error(`media file for item ${item.itemNumber} is shorter than catalogued`);
        return full;
      });
      p.catch(() => undefined); // if the loop stops early, an unread block's failure does not matter
      return p;
    };
    let blockStart = s.have;
    let nextRead = blockStart; // first chunk of the next block to read
    // The block being sent and the next few, already being read.
    const ahead: Promise<Buffer>[] = [];
    const readAhead = (reuse?: Buffer) => {
      const depth = this.readAheadDepth();
      while (ahead.length < depth && nextRead < total) {
        ahead.push(readBlock(nextRead, reuse));
        reuse = undefined; // a finished block's buffer serves one new read
        nextRead += READ_AHEAD_CHUNKS;
      }
    };
    try {
      readAhead();
      let lastSend: Promise<void> = Promise.resolve();
      const unsent: Promise<void>[] = []; // the last send of each block, oldest first
      let consumed: Buffer | undefined; // the block last encrypted, free for the next read
      const started = Date.now();
      let sent = 0;
      // A block of chunks at a time, deliveries taking turns block by block (fair shares when many
      // run at once); waiting for the terminal or the socket happens outside the turn.
      for (let i = s.have; i < total && !s.cancelled; ) {
        if (i >= blockStart + READ_AHEAD_CHUNKS) {
          blockStart += READ_AHEAD_CHUNKS;
          ahead.shift();
          readAhead(consumed);
        }
        // This block's chunks (blocks start where the terminal's stored chunks end).
        const end = Math.min(total, blockStart + READ_AHEAD_CHUNKS);
        while (!s.cancelled && end - 1 - s.have >= LIMITS.deliveryWindowChunks)
          await this.waitForProgress(s, instr);
        if (s.cancelled) break;
        const plainBlock = await (ahead[0] as Promise<Buffer>);
        consumed = plainBlock; // read again only after its chunks are encrypted (into a send block)
        const release = await this.turns.take();
        try {
          const block = this.encryptBlock(instr, item.size, total, plainBlock, blockStart, i, end);
          i = end;
          lastSend = s.conn.sendFramed(block);
          // Only the latest send is awaited; an earlier one failing means the connection closed,
          // which the close handler deals with. Do not leave its rejection unhandled. Once the
          // socket has taken the block, its buffer serves a later one.
          lastSend.then(
            () => this.sendBlocks.give(block),
            () => undefined,
          );
          sent += block.length;
        } finally {
          release();
        }
        // Back-pressure without a bubble: wait for the oldest block still in the socket's buffer,
        // not the newest, so the buffer is never drained empty before encryption resumes.
        unsent.push(lastSend);
        if (unsent.length > 64) unsent.shift(); // long settled: the socket took them
        const socketBytes = this.socketShare();
        while (s.conn.ws.bufferedAmount > socketBytes && unsent.length > 0) await unsent.shift();
        if (this.maxBytesPerSecond > 0) {
          const ahead = (sent / this.maxBytesPerSecond) * 1000 - (Date.now() - started);
          if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
        }
      }
      await lastSend;
      while (!s.cancelled && s.have < total) await this.waitForProgress(s, instr);
    } finally {
      await Promise.allSettled(ahead); // no read may still be filling a buffer given back
      for (const b of owned) this.blocks.give(b);
      await fh.close();
    }
    if (s.cancelled) return;
    this.sessions.delete(instr.orderId);
    this.pending.delete(instr.orderId);
    log('info', 'delivery-complete', { orderId: instr.orderId, chunks: total });
    this.report({ orderId: instr.orderId, have: total, total, state: 'delivered' });
  }

  /**
   * Chunks `first` to `end` (exclusive) of the block read from chunk `blockStart`, each a whole
   * WebSocket message, encrypted into one buffer that leaves in one write. Synchronous, and apart
   * from the long async loop that waits for reads, turns and the terminal.
   */
  private encryptBlock(
    instr: DeliveryInstruction,
    size: number,
    total: number,
    plainBlock: Buffer,
    blockStart: number,
    first: number,
    end: number,
  ): Buffer {
    const chunkSize = LIMITS.chunkSize;
    let bytes = 0;
    for (let i = first; i < end; i++) bytes += chunkMessageBytes(plainChunkLength(size, chunkSize, i));
    const block = this.sendBlocks.take(bytes);
    let at = 0;
    for (let i = first; i < end; i++) {
      const from = (i - blockStart) * chunkSize;
      const plain = plainBlock.subarray(from, from + plainChunkLength(size, chunkSize, i));
      at += writeChunkMessage(block, at, instr.contentKey, plain, instr.orderId, i, total);
    }
    return block;
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
