/**
 * A big title's ciphertext written past the page cache (O_DIRECT). Written the usual way, every MiB
 * of a film is copied into new page cache that the kernel writes back later: on this project's
 * VMs that copy cost the terminal 0.5 ms of CPU per MiB, and 2.5 ms when the pages were new to
 * the host, plus the kernel's writeback threads, all on the cores the terminal shares. Direct
 * writes cost 0.1-0.2 ms per MiB and leave the page cache to what is read (a lab loop of 512 MiB, a
 * sync every 4 MiB). A rental is watched later, so caching it while it arrives
 * only pushes other things out.
 *
 * O_DIRECT needs the memory, the file position and the length aligned to the disk's blocks. Chunks
 * are 64 KiB plus 41 bytes, so they are copied into an aligned staging area (two halves: one being
 * written while the other fills) and written a whole half at a time. What is left over when the
 * terminal syncs (less than a half) is written the same way up to the last whole block, and the
 * rest, under a block, through the ordinary descriptor; the next direct write covers it again.
 * Aligned memory comes from a WebAssembly.Memory, whose buffer starts on a page boundary.
 */
import { close, constants, open, read, statfsSync, write } from 'node:fs';

/** The disk block direct I/O aligns to (4 KiB covers 512-byte and 4 KiB sectors). */
export const ALIGN = 4096;
/**
 * One direct write: half of a slot. The bigger, the fewer calls: 0.17-0.21 ms of CPU per MiB in
 * writes of 1 MiB, 0.11-0.17 in 2 MiB, 0.08-0.10 in 4 MiB (the lab loop above).
 */
export const DIRECT_UNIT = 2 << 20;
/** Downloads one terminal writes directly at once, each holding a slot of two units (16 MiB at most). */
export const DIRECT_SLOTS = 4;
/** Titles smaller than this are written the usual way (a small one is stored whole, see file-storage.ts). */
export const DIRECT_MIN_BYTES = 8 << 20;

/**
 * `bytes` (a multiple of 64 KiB) of memory that starts on a page, as O_DIRECT needs: a
 * WebAssembly.Memory's buffer is mapped on its own, unlike a Buffer's.
 */
export const alignedBytes = (bytes: number): Uint8Array =>
  new Uint8Array(new WebAssembly.Memory({ initial: bytes / 65536 }).buffer);

/** Set once direct writes failed for a reason other than the disk's (alignment): never tried again. */
let brokenReason: string | undefined;

/**
 * One terminal's staging slots. Its storage owns them, as each device has its own memory (the
 * bench's farm runs fifty terminals in one process: slots shared by the process wrote all but four
 * of its fifty deliveries through the page cache). A slot is made when a download first needs it
 * and kept for the next one: new memory costs a page fault per 4 KiB, dear on these VMs.
 */
export class DirectSlots {
  private readonly idle: Uint8Array[] = [];
  private made = 0;

  /** Two aligned halves and the call that gives them back; undefined when every slot is taken. */
  take(): [Uint8Array, Uint8Array, () => void] | undefined {
    if (brokenReason) return undefined;
    const memory = this.idle.pop() ?? (this.made < DIRECT_SLOTS ? this.make() : undefined);
    if (!memory) return undefined;
    let freed = false;
    return [
      memory.subarray(0, DIRECT_UNIT),
      memory.subarray(DIRECT_UNIT),
      () => {
        if (freed) return;
        freed = true;
        this.idle.push(memory);
      },
    ];
  }

  private make(): Uint8Array {
    this.made++;
    return alignedBytes(2 * DIRECT_UNIT);
  }
}

/** tmpfs's magic number in statfs(2). */
const TMPFS_MAGIC = 0x01021994;
/**
 * Whether `dir` is in memory (tmpfs): there a file is page cache already, and writing past it
 * (which Linux allows on tmpfs since 6.6) would only add the copy into staging.
 */
export function inMemory(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * One file system call as a promise (here and in file-storage.ts, for content and small reads). The
 * callback API with a promise around it costs half the CPU of fs/promises' FileHandle per call.
 */
export function fsCall<T = void>(
  f: (done: (err: NodeJS.ErrnoException | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => f((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** Write all of `data` at `position` through `fd`: a short write is legal, so finish what it did not write. */
export async function writeAll(fd: number, data: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < data.length; )
    done += await fsCall<number>((cb) => write(fd, data, done, data.length - done, position + done, cb));
}

/**
 * Open `file` (made already) for direct writes beside `fd`, its ordinary descriptor, with a staging
 * slot of `slots`; undefined when every slot is taken, and the caller writes the usual way. Rejects where the
 * file system refuses O_DIRECT (ramfs does).
 */
export async function openDirectWriter(
  file: string,
  fd: number,
  slots: DirectSlots,
): Promise<DirectWriter | undefined> {
  const slot = slots.take();
  if (!slot) return undefined;
  try {
    const directFd = await fsCall<number>((cb) => open(file, constants.O_WRONLY | constants.O_DIRECT, cb));
    return new DirectWriter(directFd, fd, slot);
  } catch (err) {
    slot[2]();
    throw err;
  }
}

export class DirectWriter {
  private readonly halves: [Uint8Array, Uint8Array];
  private readonly freeSlot: () => void;
  /** The half being filled, the file position of its first byte (aligned), and how much it holds. */
  private cur: 0 | 1 = 0;
  private base = 0;
  private fill = 0;
  /** Each half's direct write in flight, if any. */
  private readonly writing: [Promise<void> | undefined, Promise<void> | undefined] = [undefined, undefined];
  /** The first write that failed: every later call fails with it (the caller then stops the download). */
  private failed: unknown;
  /** Calls run one at a time, in the order they came. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly directFd: number,
    /** The file's ordinary descriptor: reads, the last partial block, syncs (the caller's). */
    private readonly fd: number,
    slot: [Uint8Array, Uint8Array, () => void],
  ) {
    this.halves = [slot[0], slot[1]];
    this.freeSlot = slot[2];
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw new Error('the content file is closed');
      if (this.failed) throw this.failed;
      return f();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Copy `data` (consecutive, from file position `at`) into staging, writing each half once full.
   * Resolves once `data` is copied: the caller may reuse its buffers then.
   */
  append(at: number, data: Uint8Array[]): Promise<void> {
    return this.serial(async () => {
      if (at !== this.base + this.fill) await this.moveTo(at);
      for (const part of data) {
        for (let off = 0; off < part.length; ) {
          const n = Math.min(part.length - off, DIRECT_UNIT - this.fill);
          this.halves[this.cur].set(part.subarray(off, off + n), this.fill);
          this.fill += n;
          off += n;
          if (this.fill === DIRECT_UNIT) await this.nextHalf();
        }
      }
    });
  }

  /** The file position just past the last byte appended. */
  get end(): number {
    return this.base + this.fill;
  }

  /** Everything appended so far is in the file (not yet synced: the caller syncs `fd`). */
  settle(): Promise<void> {
    return this.serial(() => this.writeOut());
  }

  /**
   * Write out what is staged (unless `discard`: the file is being deleted), then close the direct
   * descriptor and give the slot back. The ordinary descriptor stays the caller's.
   */
  close(discard = false): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (!discard) await this.settle();
      } finally {
        // No write may still be reading the slot when another download takes it (neither rejects).
        await this.queue;
        await Promise.all(this.writing);
        this.closed = true;
        this.freeSlot();
        await fsCall((cb) => close(this.directFd, cb));
      }
    })();
    return this.closing;
  }
  private closing: Promise<void> | undefined;

  /** The full half goes to the disk; filling goes on in the other once its own write is done. */
  private async nextHalf(): Promise<void> {
    const full = this.cur;
    this.writing[full] = this.direct(this.halves[full], this.base).catch((err) => {
      this.failed ??= err;
    });
    this.cur = full === 0 ? 1 : 0;
    this.base += DIRECT_UNIT;
    this.fill = 0;
    await this.writing[this.cur];
    if (this.failed) throw this.failed;
  }

  private async writeOut(): Promise<void> {
    await Promise.all(this.writing);
    if (this.failed) throw this.failed;
    const whole = this.fill - (this.fill % ALIGN);
    const half = this.halves[this.cur];
    if (whole > 0) await this.direct(half.subarray(0, whole), this.base);
    // Under a block is left: written through the page cache, and kept staged for the next direct write.
    if (this.fill > whole) await writeAll(this.fd, half.subarray(whole, this.fill), this.base + whole);
    half.copyWithin(0, whole, this.fill);
    this.base += whole;
    this.fill -= whole;
  }

  /** Start staging at `at`: what precedes it in its block is read back, so the block is written whole. */
  private async moveTo(at: number): Promise<void> {
    await this.writeOut();
    this.base = at - (at % ALIGN);
    this.fill = at - this.base;
    const half = this.halves[this.cur];
    half.fill(0, 0, this.fill); // past the end of the file, a block reads as zeros
    for (let got = 0; got < this.fill; ) {
      const n = await fsCall<number>((cb) => read(this.fd, half, got, this.fill - got, this.base + got, cb));
      if (n === 0) break;
      got += n;
    }
  }

  /** One aligned write past the page cache; if the kernel refuses it (alignment), the usual way from then on. */
  private async direct(data: Uint8Array, position: number): Promise<void> {
    if (brokenReason) return writeAll(this.fd, data, position);
    try {
      const n = await fsCall<number>((cb) => write(this.directFd, data, 0, data.length, position, cb));
      if (n < data.length) await writeAll(this.fd, data.subarray(n), position + n);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      brokenReason = String(err);
      await writeAll(this.fd, data, position);
    }
  }
}

/** Why direct writes were turned off in this process, if they were (for tests and diagnostics). */
export const directWritesBroken = (): string | undefined => brokenReason;
