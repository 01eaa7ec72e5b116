/**
 * A delivery's full blocks of chunks are read and sealed on worker threads. On the event loop, the
 * cipher was about half of a delivery's cost, and the event loop also writes every socket: one
 * delivery could not go faster than that one thread. Here the event loop lays a block out (frame
 * heads, random chunk headers, additional data: every byte of the format decided in
 * chunk-cipher.ts) and hands the block's buffer over (transferred, not copied); a worker reads the
 * plaintext from the title's descriptor into memory of its own, encrypts into the block, and hands
 * it back, while the event loop sends the block before it.
 *
 * Each chunk is a secretstream of its own (chunk-cipher.ts), so any thread may seal any block.
 * Without sodium-native, or once a worker has died, blocks are sealed on the event loop: a job that
 * was on a dead worker rejects with SealerGone, and its buffer is gone with it.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { CHUNK_ABYTES, CHUNK_HEADER_BYTES } from '../../shared/crypto.ts';
import { log } from '../log.ts';
import { loadNative, sodiumWorker } from '../native-sodium.ts';
import { CHUNK_FIELDS } from './chunk-cipher.ts';

// Plain JavaScript, evaluated in the worker: it needs no TypeScript loader. The loop is
// chunk-cipher.ts' sealChunks (a test checks both give the same bytes).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const sn = require(workerData.sodium);
const F = ${CHUNK_FIELDS};
const HEADER = ${CHUNK_HEADER_BYTES};
const ABYTES = ${CHUNK_ABYTES};
const state = Buffer.alloc(sn.crypto_secretstream_xchacha20poly1305_STATEBYTES);
let plain = Buffer.alloc(0);
parentPort.on('message', (j) => {
  try {
    if (plain.length < j.plainBytes) plain = Buffer.allocUnsafeSlow(j.plainBytes);
    let got = 0;
    while (got < j.plainBytes) {
      const n = readSync(j.fd, plain, got, j.plainBytes - got, j.position + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== j.plainBytes) throw new Error('the title file is shorter than catalogued');
    const out = Buffer.from(j.out);
    const c = j.fields;
    for (let f = 0; f < c.length; f += F) {
      sn.crypto_secretstream_xchacha20poly1305_init_pull(state, out.subarray(c[f], c[f] + HEADER), j.key);
      sn.crypto_secretstream_xchacha20poly1305_push(
        state,
        out.subarray(c[f + 1], c[f + 1] + c[f + 3] + ABYTES),
        plain.subarray(c[f + 2], c[f + 2] + c[f + 3]),
        j.ads.subarray(c[f + 4], c[f + 4] + c[f + 5]),
        c[f + 6],
      );
    }
    j.key.fill(0);
    parentPort.postMessage({ id: j.id, out: j.out }, [j.out]);
  } catch (e) {
    j.key.fill(0);
    parentPort.postMessage({ id: j.id, out: j.out, error: String(e && e.message) }, [j.out]);
  }
});
`;

/** A block laid out by chunk-cipher.ts' layoutChunk, to be read from `fd` and sealed. */
export interface SealJob {
  /** The title's open descriptor, and where the block's plaintext starts in it. */
  fd: number;
  position: number;
  plainBytes: number;
  /** The laid-out block: its buffer must be a whole ArrayBuffer (it is handed over, then back). */
  out: Buffer;
  fields: Int32Array;
  ads: Uint8Array;
  key: Uint8Array;
}

/** The worker holding a job died (or the sealer closed): the job's buffer is lost; seal it here. */
export class SealerGone extends Error {}

interface Waiting {
  resolve: (out: Buffer) => void;
  reject: (err: Error) => void;
}
interface Slot {
  worker: Worker;
  jobs: number;
}

/** Sealing threads: one fewer than the cores (the event loop needs one), at least one, at most four. */
const defaultThreads = () => Math.max(1, Math.min(4, availableParallelism() - 1));

export class BlockSealer {
  private slots: Slot[] = [];
  /** A worker died or none could start: blocks are sealed on the event loop from then on. */
  private failed = false;
  private nextId = 0;
  /** Blocks sealed on the threads so far (for tests and status). */
  sealed = 0;
  private readonly waiting = new Map<number, Waiting>();

  constructor(private readonly threads = defaultThreads()) {}

  /** Whether blocks can be sealed off the event loop (sodium-native loads, no worker has died). */
  get available(): boolean {
    return !this.failed && loadNative() !== null;
  }

  /**
   * Reads and seals `job` on a worker; resolves with the sealed block (a new Buffer over the same
   * memory: `job.out` is detached once handed over). Rejects with SealerGone if the worker dies
   * first, or with the worker's error (a short read).
   */
  seal(job: SealJob): Promise<Buffer> {
    const slot = this.leastBusy();
    if (!slot) return Promise.reject(new SealerGone('no sealing thread'));
    const { out } = job;
    const whole = out.buffer;
    if (!(whole instanceof ArrayBuffer) || out.byteOffset !== 0 || out.byteLength !== whole.byteLength)
      return Promise.reject(new Error('a sealed block must be a whole ArrayBuffer'));
    const id = this.nextId++;
    const promise = new Promise<Buffer>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    slot.jobs++;
    slot.worker.ref(); // held while jobs are on it
    // A copy of exactly the key's bytes, handed over too (none stays behind here); the worker zeroes it.
    const key = new Uint8Array(job.key);
    slot.worker.postMessage(
      {
        id,
        fd: job.fd,
        position: job.position,
        plainBytes: job.plainBytes,
        out: whole,
        fields: job.fields,
        ads: job.ads,
        key,
      },
      [whole, key.buffer],
    );
    return promise;
  }

  /** Workers end; jobs on them reject with SealerGone, and later blocks are sealed on the event loop. */
  async close(): Promise<void> {
    this.failed = true;
    const slots = this.slots;
    this.slots = [];
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.reject(new SealerGone('the block sealer closed'));
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private leastBusy(): Slot | undefined {
    if (this.failed) return undefined;
    if (this.slots.length === 0 && !this.start()) return undefined;
    let best = this.slots[0];
    for (const s of this.slots) if (best && s.jobs < best.jobs) best = s;
    return best;
  }

  private start(): boolean {
    for (let i = 0; i < this.threads; i++) {
      const slot = { jobs: 0 } as Slot; // its worker is set below, before any message can arrive
      const worker = sodiumWorker<{ id: number; out: ArrayBuffer; error?: string }>(
        WORKER_SOURCE,
        {},
        (m) => {
          const w = this.waiting.get(m.id);
          if (!w) return;
          this.waiting.delete(m.id);
          slot.jobs--;
          if (slot.jobs === 0) slot.worker.unref();
          if (m.error) w.reject(new Error(m.error));
          else {
            this.sealed++;
            w.resolve(Buffer.from(m.out));
          }
        },
        (why) => {
          if (!this.slots.includes(slot)) return; // closed, or another thread's death stopped it
          log('error', 'block-sealer-died', { error: why });
          this.failed = true;
          const all = this.slots;
          this.slots = [];
          for (const s of all) void s.worker.terminate();
          for (const [id, w] of this.waiting) {
            this.waiting.delete(id);
            w.reject(new SealerGone(`a sealing thread stopped: ${why}`));
          }
        },
      );
      if (!worker) {
        this.failed = true;
        return false;
      }
      slot.worker = worker;
      this.slots.push(slot);
    }
    return true;
  }
}

/** The process's sealer, shared by every delivery engine in it; its threads start with the first full block. */
export const blockSealer = new BlockSealer();
