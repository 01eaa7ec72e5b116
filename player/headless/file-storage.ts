/** Terminal storage in a folder: the headless terminal's. Identity is a 0600 file. */
import { close, existsSync, fdatasync, mkdirSync, read, readdirSync, readFile, writev } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { ChurnMap } from '../../shared/churn-map.ts';
import {
  cipherChunkLength,
  fromB64,
  type Identity,
  plainChunkLength,
  type SignedEnvelope,
  toB64,
} from '../../shared/crypto.ts';
import type {
  PendingImpression,
  StoredPreroll,
  StoredRental,
  TerminalState,
  TerminalStorage,
} from '../core/terminal-storage.ts';
import { directReadBytes, openDirectReader, readDirect } from './direct-reader.ts';
import {
  DIRECT_MIN_BYTES,
  DirectSlots,
  type DirectWriter,
  fsCall,
  inMemory,
  openDirectWriter,
  writeAll,
} from './direct-writer.ts';
import { openReadWrite, replaceFile, storeWholeFile } from './file-worker.ts';

/**
 * Replace a file whole or not at all, on the file worker (one message each way, see file-worker.ts),
 * making `dir` first if given. Writes to one file run one after another in the order they were asked
 * for (two links saving state at once must not share a temporary file, and the last word wins).
 */
const writesInFlight = new ChurnMap<string, Promise<void>>();
function writeAtomic(file: string, text: string | Uint8Array, durable = true, dir?: string): Promise<void> {
  // The write before never rejects (it is kept caught, below). Closures inline, not named: under
  // tsx each named one costs a defineProperty per write (BENCHMARKS.md).
  const done = (writesInFlight.get(file) ?? Promise.resolve()).then(() =>
    replaceFile(file, text, durable, dir),
  );
  const settled = done.catch(() => undefined);
  writesInFlight.set(file, settled);
  void settled.then(() => {
    if (writesInFlight.get(file) === settled) writesInFlight.delete(file);
  });
  return done;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  // Most misses are a new order's files: a stat is far cheaper than a failed open's exception.
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(await fsCall<string>((cb) => readFile(file, 'utf8', cb))) as T;
  } catch {
    return undefined;
  }
}

const MAX_OPEN_FILES = 32;
/** Rental folders indexed at most (about 100 bytes each); past it, absent ones are asked of the disk. */
const MAX_INDEXED_FOLDERS = 100_000;
const MAX_UNSYNCED = 256;
/** Titles up to this size are stored whole in one step (their chunks are copied to the file worker). */
const STORE_WHOLE_MAX_BYTES = 256 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A file in a rental's folder. The folder's path is normalized already (made with `join` once, plus
 * an order id checked to be a UUID), so plain concatenation: `join` normalizes the whole path again
 * on every call, several per rental.
 */
const inFolder = (dir: string, name: string) => `${dir}${sep}${name}`;

/** An open content file: its descriptor, the calls using it, and its direct writer (a big title's). */
interface ContentHandle {
  file: string;
  fd: number;
  busy: number;
  closing: boolean;
  direct?: DirectWriter;
  /** The title's length in the file, once a direct writer is attached: reaching it gives the slot back. */
  titleBytes?: number;
  /** The file opened for reads past the page cache, at the first such read (see direct-reader.ts). */
  readFd?: number;
}

export class FileStorage implements TerminalStorage {
  private readonly rentalsDir: string;
  /** @param maxIndexedFolders the folder index's bound (see `folders`); smaller only in tests. */
  constructor(
    readonly dir: string,
    private readonly maxIndexedFolders = MAX_INDEXED_FOLDERS,
  ) {
    this.rentalsDir = join(dir, 'rentals');
    mkdirSync(this.rentalsDir, { recursive: true, mode: 0o700 });
    this.directRefused = inMemory(this.rentalsDir);
    for (const name of readdirSync(this.rentalsDir)) if (UUID.test(name)) this.folderMade(name);
  }

  private rentalDir(orderId: string) {
    if (!UUID.test(orderId)) throw new Error('invalid order id');
    return inFolder(this.rentalsDir, orderId);
  }

  /**
   * The rentals whose folder exists: listed at the start, and each added once a write made it. A
   * new order's offer asks for its rental, its licence and its content before any exist: the
   * index answers that they do not, where each question cost a system call (a file's lookup cost
   * the bench's terminals 5 % of their CPU). Complete unless it outgrew its bound; from then on it
   * only says which folders need not be made, and absent files are asked of the disk.
   */
  private readonly folders = new Set<string>();
  private foldersComplete = true;
  /** No folder, so none of the rental's files: known without asking the disk. */
  private absent(orderId: string): boolean {
    return this.foldersComplete && !this.folders.has(orderId);
  }
  /**
   * Files being made or replaced right now. `close` waits for them: a terminal that stopped must not
   * make a file afterwards (a folder being deleted then would not be empty).
   */
  private readonly making = new ChurnMap<number, Promise<unknown>>();
  private nextMaking = 0;
  private track<T>(p: Promise<T>): Promise<T> {
    const id = this.nextMaking++;
    this.making.set(id, p);
    p.then(
      () => this.making.delete(id),
      () => this.making.delete(id),
    );
    return p;
  }
  private replace(file: string, text: string | Uint8Array, durable = true, dir?: string) {
    return this.track(writeAtomic(file, text, durable, dir));
  }
  /**
   * The rental's folder, and whether it still has to be made: the file worker makes it with the
   * first file written into it (creating a directory waits for the file system's journal, which
   * other writes' syncs keep busy, so never on the event loop).
   */
  private rentalFolder(orderId: string): { dir: string; make?: string } {
    const dir = this.rentalDir(orderId);
    return this.folders.has(orderId) ? { dir } : { dir, make: dir };
  }
  private folderMade(orderId: string) {
    if (this.folders.size >= this.maxIndexedFolders) {
      this.folders.clear();
      this.foldersComplete = false;
    }
    this.folders.add(orderId);
  }

  async loadIdentity() {
    const j = await readJson<{ signPublicKey: string; signSecretKey: string }>(
      join(this.dir, 'identity.json'),
    );
    return j && { signPublicKey: fromB64(j.signPublicKey), signSecretKey: fromB64(j.signSecretKey) };
  }
  async saveIdentity(id: Identity) {
    await this.replace(
      join(this.dir, 'identity.json'),
      JSON.stringify({ signPublicKey: toB64(id.signPublicKey), signSecretKey: toB64(id.signSecretKey) }),
    );
  }
  async loadState(): Promise<TerminalState> {
    return (
      (await readJson<TerminalState>(join(this.dir, 'state.json'))) ?? { highWater: 0, serverPublicKey: null }
    );
  }
  async saveState(state: TerminalState) {
    await this.replace(join(this.dir, 'state.json'), JSON.stringify(state));
  }

  async rentals() {
    const out: StoredRental[] = [];
    const names = new Set(await readdir(this.rentalsDir));
    for (const id of this.unsynced.keys()) names.add(id);
    for (const name of names) {
      if (!UUID.test(name)) continue;
      const r = await this.rental(name);
      if (r) out.push(r);
    }
    return out;
  }
  async rental(orderId: string) {
    const held = this.unsynced.get(orderId);
    if (held) return { ...held };
    const dir = this.rentalDir(orderId); // an invalid id throws, index or not
    if (this.absent(orderId)) return undefined;
    return readJson<StoredRental>(inFolder(dir, 'rental.json'));
  }
  /**
   * Records that need not survive a power cut (a new offer, nothing stored yet) are held here until
   * a synced record replaces them: writing them cost a terminal five file calls per rental, and if
   * the process dies first, the server offers again. Bounded; beyond it they are written.
   */
  private readonly unsynced = new ChurnMap<string, StoredRental>();
  async putRental(r: StoredRental, opts: { durable?: boolean } = {}) {
    if (opts.durable === false && (this.unsynced.has(r.orderId) || this.unsynced.size < MAX_UNSYNCED)) {
      this.unsynced.set(r.orderId, { ...r });
      return;
    }
    const { dir, make } = this.rentalFolder(r.orderId);
    await this.replace(inFolder(dir, 'rental.json'), JSON.stringify(r), opts.durable ?? true, make);
    this.folderMade(r.orderId);
    this.unsynced.delete(r.orderId);
  }
  /**
   * Open content files, kept across chunks (opening per chunk cost more than the write). A file is
   * closed only when no call is using it: a descriptor closed under a write in flight could be
   * reused by the next open, and the write land in another file.
   */
  private readonly handles = new ChurnMap<string, ContentHandle>();
  /**
   * Big titles are written the usual way: the folder is in memory (tmpfs), or its file system
   * refused O_DIRECT.
   */
  private directRefused: boolean;
  /** Whether big titles here are written the usual way (a folder in memory, or O_DIRECT refused). */
  get directWritesRefused(): boolean {
    return this.directRefused;
  }
  /** This terminal's staging memory for direct writes. */
  private readonly directSlots = new DirectSlots();

  /**
   * Run `use` with the rental's content file open; undefined if there is none. `create` (the
   * rental being written) makes the file if missing, and writes a big title directly.
   */
  private async withContent<T>(
    orderId: string,
    create: StoredRental | undefined,
    use: (h: ContentHandle) => Promise<T>,
  ): Promise<T | undefined> {
    let h = this.handles.get(orderId);
    if (!h) {
      const { dir, make } = this.rentalFolder(orderId);
      const file = inFolder(dir, 'content.enc');
      if (!create && (this.absent(orderId) || !existsSync(file))) return undefined;
      // Read and write, made if missing, never truncated: one call whether or not it exists.
      const fd = await this.track(openReadWrite(file, create ? make : undefined));
      if (create) this.folderMade(orderId);
      h = this.handles.get(orderId); // opened meanwhile by another call: keep one
      if (h) await fsCall((cb) => close(fd, cb));
      else {
        h = { file, fd, busy: 0, closing: false };
        this.handles.set(orderId, h);
        if (this.handles.size > MAX_OPEN_FILES)
          void this.release(this.handles.keys()[0] as string).catch(() => undefined);
      }
    }
    h.busy++;
    try {
      // A big title being written goes past the page cache once a slot is free: from its first
      // chunk, or from wherever it has got to when another download gives one back.
      if (create && create.size >= DIRECT_MIN_BYTES && !h.direct && !this.directRefused)
        await this.attachDirect(h, create);
      return await use(h);
    } finally {
      await this.unuse(h);
    }
  }
  private async attachDirect(h: ContentHandle, r: StoredRental): Promise<void> {
    try {
      const direct = await openDirectWriter(h.file, h.fd, this.directSlots);
      if (!direct) return;
      if (h.direct || h.closing) {
        await direct.close(true); // another call attached one meanwhile
        return;
      }
      h.direct = direct;
      const lastChunk = cipherChunkLength(plainChunkLength(r.size, r.chunkSize, r.totalChunks - 1));
      h.titleBytes = (r.totalChunks - 1) * cipherChunkLength(r.chunkSize) + lastChunk;
    } catch (err) {
      // EINVAL: this file system takes no O_DIRECT; anything else (no descriptor free) may pass.
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') this.directRefused = true;
    }
  }
  private async unuse(h: ContentHandle): Promise<void> {
    h.busy--;
    if (h.closing && h.busy === 0) await this.closeContent(h);
  }
  /** What is staged for a direct write goes to the file first, unless the file is being deleted. */
  private async closeContent(h: ContentHandle, discard = false): Promise<void> {
    try {
      await h.direct?.close(discard);
    } finally {
      const { readFd } = h;
      h.readFd = undefined;
      // Closing a descriptor only read through loses nothing: a failure must not keep h.fd open.
      if (readFd !== undefined) await fsCall((cb) => close(readFd, cb)).catch(() => undefined);
      await fsCall((cb) => close(h.fd, cb));
    }
  }

  /**
   * A direct writer that failed (a full disk) fails every later call, and what it had staged is
   * lost: the file is let go, so the download's next attempt opens it afresh. Only chunks synced
   * were ever reported stored, so nothing reported is lost.
   */
  private async viaDirect(orderId: string, h: ContentHandle, op: Promise<void>): Promise<void> {
    try {
      await op;
    } catch (err) {
      if (this.handles.get(orderId) === h) void this.release(orderId, true).catch(() => undefined);
      throw err;
    }
  }

  /** What the rental's direct writer has staged, if it has one, is in the file. */
  private async settled(orderId: string, h: ContentHandle): Promise<void> {
    if (h.direct) await this.viaDirect(orderId, h, h.direct.settle());
  }

  /** Forget the rental's open file; it closes once no call is using it. */
  private async release(orderId: string, discard = false): Promise<void> {
    const h = this.handles.get(orderId);
    if (!h) return;
    this.handles.delete(orderId);
    h.closing = true;
    if (h.busy === 0) await this.closeContent(h, discard);
  }

  private impressionsFile() {
    return join(this.dir, 'impressions.json');
  }
  async pendingImpressions() {
    return (await readJson<PendingImpression[]>(this.impressionsFile())) ?? [];
  }
  /** Read-modify-write of impressions.json, one at a time (acknowledgements arrive together). */
  private impressionOps: Promise<unknown> = Promise.resolve();
  private updateImpressions(change: (all: PendingImpression[]) => PendingImpression[]): Promise<void> {
    const op = this.impressionOps.then(async () => {
      const all = await this.pendingImpressions();
      await this.replace(this.impressionsFile(), JSON.stringify(change(all).slice(-1000)));
    });
    this.impressionOps = op.catch(() => undefined);
    return op;
  }
  queueImpression(i: PendingImpression) {
    return this.updateImpressions((all) =>
      all.some((x) => x.impressionId === i.impressionId) ? all : [...all, i],
    );
  }
  dropImpression(impressionId: string) {
    return this.updateImpressions((all) => all.filter((x) => x.impressionId !== impressionId));
  }

  async close() {
    // What was started before, and what those started in turn (a few rounds: no livelock).
    for (let round = 0; round < 10 && this.making.size > 0; round++)
      await Promise.allSettled(this.making.values());
    for (const id of this.handles.keys()) await this.release(id);
  }

  async writeChunk(r: StoredRental, index: number, cipher: Uint8Array) {
    await this.writeChunks(r, index, [cipher]);
  }
  async writeChunks(r: StoredRental, first: number, ciphers: Uint8Array[]) {
    await this.withContent(r.orderId, r, async (h) => {
      const { fd, direct } = h;
      // Consecutive chunks sit back to back (only the last chunk of a title is shorter).
      const at = first * cipherChunkLength(r.chunkSize);
      if (direct) return this.viaDirect(r.orderId, h, direct.append(at, ciphers));
      const written = await fsCall<number>((cb) => writev(fd, ciphers, at, cb));
      const total = ciphers.reduce((n, c) => n + c.length, 0);
      // A short writev is legal; finish what it did not write.
      if (written < total) await writeAll(fd, Buffer.concat(ciphers).subarray(written), at + written);
    });
  }
  async readChunk(r: StoredRental, index: number) {
    const stride = cipherChunkLength(r.chunkSize);
    const plainLen = index < r.totalChunks - 1 ? r.chunkSize : r.size - r.chunkSize * (r.totalChunks - 1);
    const len = cipherChunkLength(plainLen);
    const buf = Buffer.allocUnsafeSlow(len); // filled by the read; returned only if whole; never a shared pool
    const bytesRead = await this.withContent(r.orderId, undefined, async (h) => {
      await this.settled(r.orderId, h); // what is staged is read from the file
      return fsCall<number>((cb) => read(h.fd, buf, 0, len, index * stride, cb));
    });
    return bytesRead === len ? buf : undefined;
  }
  /** Buffers this storage made for reading big titles past the page cache (see readBuffer). */
  private readonly readRooms = new WeakSet<Uint8Array>();
  /**
   * Memory for the caller to lend readChunks, for `r`'s runs of chunks up to `bytes` long: where the
   * title is big enough to have been written past the page cache, room to read it past the page
   * cache too (direct-reader.ts); else a plain buffer.
   */
  readBuffer(r: StoredRental, bytes: number): Uint8Array {
    if (r.size < DIRECT_MIN_BYTES || this.directRefused) return new Uint8Array(bytes);
    const room = directReadBytes(bytes);
    this.readRooms.add(room);
    return room;
  }
  async readChunks(r: StoredRental, first: number, count: number, into?: Uint8Array) {
    const stride = cipherChunkLength(r.chunkSize);
    const last = first + count - 1;
    const lastLen = cipherChunkLength(plainChunkLength(r.size, r.chunkSize, last));
    const bytes = (count - 1) * stride + lastLen;
    // One read for the whole run of chunks; each chunk is a view of it, and only of bytes read (so
    // no need to zero the buffer first: that was 6 % of a player's decryption).
    const at = first * stride;
    const data = await this.withContent(r.orderId, undefined, async (h) => {
      await this.settled(r.orderId, h);
      if (into && this.readRooms.has(into) && !this.directRefused) {
        try {
          return await readDirect(await this.directReadFd(h), into, at, bytes);
        } catch (err) {
          // EINVAL: this file system takes no O_DIRECT; read the usual way, now and from now on.
          if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
          this.directRefused = true;
        }
      }
      // The caller's buffer if it lends one (no new memory per block), else memory of its own,
      // never Node's shared pool.
      const buf = into && into.length >= bytes ? into.subarray(0, bytes) : Buffer.allocUnsafeSlow(bytes);
      const bytesRead = await fsCall<number>((cb) => read(h.fd, buf, 0, buf.length, at, cb));
      return buf.subarray(0, bytesRead);
    });
    if (!data) return [];
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const end = i === count - 1 ? bytes : (i + 1) * stride;
      if (end > data.length) break;
      out.push(data.subarray(i * stride, end));
    }
    return out;
  }
  /** The content opened for reads past the page cache (see direct-reader.ts), at its first such read. */
  private async directReadFd(h: ContentHandle): Promise<number> {
    if (h.readFd === undefined) {
      // Closed with the handle (closeContent), which waits for the call using it to finish.
      const fd = await openDirectReader(h.file);
      if (h.readFd === undefined) h.readFd = fd;
      else await fsCall((cb) => close(fd, cb)); // opened meanwhile by another read: keep one
    }
    return h.readFd;
  }
  async flush(orderId: string) {
    await this.withContent(orderId, undefined, async (h) => {
      const direct = h.direct;
      await this.settled(orderId, h);
      await fsCall((cb) => fdatasync(h.fd, cb));
      // The whole title has arrived: its slot goes to the next download (the file stays open for
      // reading; a chunk written again later takes a slot again, or goes the usual way). What came
      // while this sync ran is written first (close settles); the sync after this one covers it.
      if (direct && h.direct === direct && h.titleBytes !== undefined && direct.end >= h.titleBytes) {
        h.direct = undefined;
        await this.viaDirect(orderId, h, direct.close());
      }
    });
  }
  /**
   * One message to the file worker instead of five round trips (open, write, sync, close, record):
   * on a busy machine each hand-off and wake-up cost more than the small title's writes.
   */
  async storeWhole(r: StoredRental, ciphers: Uint8Array[]) {
    const bytes = ciphers.reduce((n, c) => n + c.length, 0);
    if (this.handles.has(r.orderId) || bytes > STORE_WHOLE_MAX_BYTES) {
      // The content file is open here already, or the title is too big to copy to the worker.
      await this.writeChunks(r, 0, ciphers);
      await this.flush(r.orderId);
      await this.putRental(r);
      return;
    }
    const { dir, make } = this.rentalFolder(r.orderId);
    await this.track(
      storeWholeFile(
        inFolder(dir, 'content.enc'),
        ciphers,
        inFolder(dir, 'rental.json'),
        JSON.stringify(r),
        make,
      ),
    );
    this.folderMade(r.orderId);
    this.unsynced.delete(r.orderId);
  }
  async licence(orderId: string) {
    const dir = this.rentalDir(orderId);
    if (this.absent(orderId)) return undefined;
    return readJson<SignedEnvelope>(inFolder(dir, 'licence.json'));
  }
  async putLicence(orderId: string, licence: SignedEnvelope) {
    const { dir, make } = this.rentalFolder(orderId);
    await this.replace(inFolder(dir, 'licence.json'), JSON.stringify(licence), true, make);
    this.folderMade(orderId);
  }
  async preroll(orderId: string): Promise<StoredPreroll | undefined> {
    const dir = this.rentalDir(orderId);
    if (this.absent(orderId)) return undefined;
    const meta = await readJson<{ envelope: SignedEnvelope; played: boolean }>(inFolder(dir, 'preroll.json'));
    if (!meta) return undefined;
    try {
      const creative = await fsCall<Buffer>((cb) => readFile(inFolder(dir, 'preroll.bin'), cb));
      return { ...meta, creative: new Uint8Array(creative) };
    } catch {
      return undefined;
    }
  }
  async putPreroll(orderId: string, p: StoredPreroll) {
    const { dir, make } = this.rentalFolder(orderId);
    // The creative first: preroll.json names a pre-roll only once its bytes are in place.
    if (!p.played) await this.replace(inFolder(dir, 'preroll.bin'), p.creative, true, make);
    await this.replace(
      inFolder(dir, 'preroll.json'),
      JSON.stringify({ envelope: p.envelope, played: p.played }),
      true,
      make,
    );
    this.folderMade(orderId);
  }
  async wipe(orderId: string) {
    const dir = this.rentalDir(orderId);
    await this.release(orderId, true);
    await rm(inFolder(dir, 'licence.json'), { force: true });
    await rm(inFolder(dir, 'preroll.json'), { force: true });
    await rm(inFolder(dir, 'preroll.bin'), { force: true });
    await rm(inFolder(dir, 'content.enc'), { force: true });
    const r = await this.rental(orderId);
    if (r) await this.putRental({ ...r, expired: true, have: 0 });
  }
}
