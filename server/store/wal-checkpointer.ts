/**
 * Checkpoints of the SQLite write-ahead log, off the event loop. SQLite's automatic checkpoint runs
 * inside the commit that crosses 1,000 pages, on the thread that commits: it copies the log into the
 * database file and syncs it, and a busy server's event loop stood still for it (order latency at
 * 1,000 orders/s: p50 357 ms with it, 28 ms without). Here a worker thread with a connection of its
 * own runs a PASSIVE checkpoint every CHECKPOINT_EVERY_MS. PASSIVE never waits for the writer, and
 * the writer never waits for it; the log restarts from its beginning once a checkpoint has caught up.
 * The worker's connection runs synchronous = FULL, so a checkpoint syncs the log before copying it
 * and the database file before the log is reused: durability is what it was.
 *
 * Under steady load the log never restarts by itself. SQLite reuses the log only when a write
 * transaction begins with every frame already copied, and a server that commits every few
 * milliseconds always has frames newer than the worker's last checkpoint, which takes longer than the
 * gap between two commits: in the orders benchmark the log grew to 372 MB in 45 s (35 MB a second at
 * 1,000 orders/s) and would have grown until the disk was full. So once the log holds
 * WAL_RESTART_BYTES, the worker says so and the writer copies the few frames left itself, between two
 * commits (see SqliteRepository.settle); its next commit then writes at the log's start.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export const CHECKPOINT_EVERY_MS = 200;
/**
 * The log's size at which the writer catches up and restarts it. Catching up stops the writer's
 * event loop for 4-20 ms (4-9 in the orders benchmark: the frames committed since the worker's
 * checkpoint, and two syncs; the restarted log's header costs a third in the next commit), so it is a
 * bound on the disk the log takes, not a rhythm: at 1,000 orders/s it comes about every seven
 * seconds. The log file is cut back to this size when it restarts (journal_size_limit).
 */
export const WAL_RESTART_BYTES = 256 * 1024 * 1024;

// Plain JavaScript, evaluated in the worker: it needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = FULL');
// A frame is a page and its 24-byte header.
const restartFrames = Math.ceil(workerData.restartBytes / (db.pragma('page_size', { simple: true }) + 24));
const step = () => {
  try {
    const [done] = db.pragma('wal_checkpoint(PASSIVE)');
    if (done.log >= restartFrames) parentPort.postMessage({ logFrames: done.log });
  } catch (err) {
    parentPort.postMessage({ error: String(err) });
  }
};
const timer = setInterval(step, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  step();
  db.close();
  parentPort.close();
});
`;

export class WalCheckpointer {
  private readonly worker: Worker;
  private stopped: Promise<void> | undefined;
  private exited = false;
  /** Frames in the log at the worker's last checkpoint, when that reached the restart size. */
  private restartDue: number | undefined;
  /** The log's size in frames, once, if the worker found it at the restart size: the writer catches up. */
  takeRestart(): number | undefined {
    const frames = this.restartDue;
    this.restartDue = undefined;
    return frames;
  }

  /** @param onError called when a checkpoint failed, or the worker died (the caller falls back). */
  constructor(
    file: string,
    onError: (error: string) => void,
    everyMs = CHECKPOINT_EVERY_MS,
    restartBytes = WAL_RESTART_BYTES,
  ) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, driver, everyMs, restartBytes },
    });
    this.worker.on('message', (m: { error?: string; logFrames?: number }) => {
      if (m.error) onError(m.error);
      else this.restartDue = m.logFrames;
    });
    this.worker.on('error', (err) => onError(String(err)));
    this.worker.once('exit', () => {
      this.exited = true;
    });
    // The server does not stay up for its checkpointer.
    this.worker.unref();
  }

  /** A last checkpoint, then the worker ends. */
  stop(): Promise<void> {
    this.stopped ??= this.exited
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          this.worker.once('exit', () => resolve());
          // Held until it has finished (unreferenced, the process could exit with the close pending).
          this.worker.ref();
          this.worker.postMessage('stop');
          // A checkpoint stuck on the disk does not hold the shutdown for ever.
          setTimeout(() => void this.worker.terminate(), 10_000).unref();
        });
    return this.stopped;
  }
}
