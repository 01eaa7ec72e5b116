/** Terminal storage in a folder: the headless terminal's. Identity is a 0600 file. */
import { constants, existsSync, mkdirSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
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

/**
 * Replace a file whole or not at all. Writes to one file run one after another in the order they were
 * asked for (two links saving state at once must not share a temporary file, and the last word wins).
 */
const writesInFlight = new Map<string, Promise<void>>();
function writeAtomic(file: string, text: string | Uint8Array, durable = true): Promise<void> {
  const write = async () => {
    const tmp = `${file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  };
  const done = (writesInFlight.get(file) ?? Promise.resolve()).then(write, write);
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
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

const MAX_OPEN_FILES = 32;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class FileStorage implements TerminalStorage {
  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'rentals'), { recursive: true, mode: 0o700 });
  }

  private rentalDir(orderId: string) {
    if (!UUID.test(orderId)) throw new Error('invalid order id');
    return join(this.dir, 'rentals', orderId);
  }

  /**
   * The rental's folder, made once. Off the event loop: creating a directory waits for the file
   * system's journal, which the fsyncs of other writes keep busy (it stalled a busy terminal).
   */
  private readonly madeDirs = new Set<string>();
  private async ensureRentalDir(orderId: string) {
    const dir = this.rentalDir(orderId);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (this.madeDirs.size >= 1024) this.madeDirs.clear();
      this.madeDirs.add(dir);
    }
    return dir;
  }

  async loadIdentity() {
    const j = await readJson<{ signPublicKey: string; signSecretKey: string }>(
      join(this.dir, 'identity.json'),
    );
    return j && { signPublicKey: fromB64(j.signPublicKey), signSecretKey: fromB64(j.signSecretKey) };
  }
  async saveIdentity(id: Identity) {
    await writeAtomic(
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
    await writeAtomic(join(this.dir, 'state.json'), JSON.stringify(state));
  }

  async rentals() {
    const out: StoredRental[] = [];
    for (const name of await readdir(join(this.dir, 'rentals'))) {
      if (!UUID.test(name)) continue;
      const r = await this.rental(name);
      if (r) out.push(r);
    }
    return out;
  }
  async rental(orderId: string) {
    return readJson<StoredRental>(join(this.rentalDir(orderId), 'rental.json'));
  }
  async putRental(r: StoredRental, opts: { durable?: boolean } = {}) {
    const dir = await this.ensureRentalDir(r.orderId);
    await writeAtomic(join(dir, 'rental.json'), JSON.stringify(r), opts.durable ?? true);
  }
  /** Open content files, kept across chunks (opening per chunk cost more than the write). */
  private readonly handles = new Map<string, FileHandle>();

  private async contentFile(orderId: string, create: boolean): Promise<FileHandle | undefined> {
    const open_ = this.handles.get(orderId);
    if (open_) return open_;
    const file = join(this.rentalDir(orderId), 'content.enc');
    if (!create && !existsSync(file)) return undefined;
    // Read and write, made if missing, never truncated: one call whether or not it exists.
    const fh = await open(file, constants.O_RDWR | constants.O_CREAT, 0o600);
    if (this.handles.size >= MAX_OPEN_FILES) {
      const [oldest, h] = this.handles.entries().next().value as [string, FileHandle];
      this.handles.delete(oldest);
      await h.close();
    }
    this.handles.set(orderId, fh);
    return fh;
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
      await writeAtomic(this.impressionsFile(), JSON.stringify(change(all).slice(-1000)));
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
    for (const id of [...this.handles.keys()]) await this.closeContent(id);
  }

  private async closeContent(orderId: string) {
    const fh = this.handles.get(orderId);
    this.handles.delete(orderId);
    await fh?.close();
  }

  async writeChunk(r: StoredRental, index: number, cipher: Uint8Array) {
    const fh = (await this.contentFile(r.orderId, true)) as FileHandle;
    await fh.write(cipher, 0, cipher.length, index * cipherChunkLength(r.chunkSize));
  }
  async writeChunks(r: StoredRental, first: number, ciphers: Uint8Array[]) {
    const fh = (await this.contentFile(r.orderId, true)) as FileHandle;
    // Consecutive chunks sit back to back (only the last chunk of a title is shorter).
    const at = first * cipherChunkLength(r.chunkSize);
    const { bytesWritten } = await fh.writev(ciphers, at);
    const total = ciphers.reduce((n, c) => n + c.length, 0);
    // A short writev is legal; finish what it did not write.
    if (bytesWritten < total) {
      const rest = Buffer.concat(ciphers).subarray(bytesWritten);
      await fh.write(rest, 0, rest.length, at + bytesWritten);
    }
  }
  async readChunk(r: StoredRental, index: number) {
    const stride = cipherChunkLength(r.chunkSize);
    const plainLen = index < r.totalChunks - 1 ? r.chunkSize : r.size - r.chunkSize * (r.totalChunks - 1);
    const len = cipherChunkLength(plainLen);
    const fh = await this.contentFile(r.orderId, false);
    if (!fh) return undefined;
    const buf = new Uint8Array(len);
    const { bytesRead } = await fh.read(buf, 0, len, index * stride);
    return bytesRead === len ? buf : undefined;
  }
  async readChunks(r: StoredRental, first: number, count: number) {
    const stride = cipherChunkLength(r.chunkSize);
    const last = first + count - 1;
    const lastLen = cipherChunkLength(plainChunkLength(r.size, r.chunkSize, last));
    const fh = await this.contentFile(r.orderId, false);
    if (!fh) return [];
    // One read for the whole run of chunks; each chunk is a view of it.
    const buf = new Uint8Array((count - 1) * stride + lastLen);
    const { bytesRead } = await fh.read(buf, 0, buf.length, first * stride);
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const end = i === count - 1 ? buf.length : (i + 1) * stride;
      if (end > bytesRead) break;
      out.push(buf.subarray(i * stride, end));
    }
    return out;
  }
  async flush(orderId: string) {
    await (await this.contentFile(orderId, false))?.datasync();
  }
  async licence(orderId: string) {
    return readJson<SignedEnvelope>(join(this.rentalDir(orderId), 'licence.json'));
  }
  async putLicence(orderId: string, licence: SignedEnvelope) {
    const dir = await this.ensureRentalDir(orderId);
    await writeAtomic(join(dir, 'licence.json'), JSON.stringify(licence));
  }
  async preroll(orderId: string): Promise<StoredPreroll | undefined> {
    const dir = this.rentalDir(orderId);
    const meta = await readJson<{ envelope: SignedEnvelope; played: boolean }>(join(dir, 'preroll.json'));
    if (!meta) return undefined;
    try {
      return { ...meta, creative: new Uint8Array(await readFile(join(dir, 'preroll.bin'))) };
    } catch {
      return undefined;
    }
  }
  async putPreroll(orderId: string, p: StoredPreroll) {
    const dir = await this.ensureRentalDir(orderId);
    // The creative first: preroll.json names a pre-roll only once its bytes are in place.
    if (!p.played) await writeAtomic(join(dir, 'preroll.bin'), p.creative);
    await writeAtomic(join(dir, 'preroll.json'), JSON.stringify({ envelope: p.envelope, played: p.played }));
  }
  async wipe(orderId: string) {
    const dir = this.rentalDir(orderId);
    await this.closeContent(orderId);
    await rm(join(dir, 'licence.json'), { force: true });
    await rm(join(dir, 'preroll.json'), { force: true });
    await rm(join(dir, 'preroll.bin'), { force: true });
    await rm(join(dir, 'content.enc'), { force: true });
    const r = await this.rental(orderId);
    if (r) await this.putRental({ ...r, expired: true, have: 0 });
  }
}
