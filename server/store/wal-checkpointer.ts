/**
 * Checkpoints of the SQLite write-ahead log, off the event loop. SQLite's automatic checkpoint runs
 * inside the commit that crosses 1,000 pages, on the thread that commits: it copies the log into the
 * database file and syncs it, and a busy server's event loop stood still for it (order latency at
 * 1,000 orders/s: p50 357 ms with it, 28 ms without). Here a worker thread with a connection of its
 * own runs a PASSIVE checkpoint every CHECKPOINT_EVERY_MS. PASSIVE never waits for the writer, and
 * the writer never waits for it; the log restarts from its beginning once a checkpoint has caught up.
 * The worker's connection runs synchronous = FULL, so a checkpoint syncs the log before copying it
 * and the database file before the log is reused: durability is what it was.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export const CHECKPOINT_EVERY_MS = 200;

// Plain JavaScript, evaluated in the worker: it needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = FULL');
const step = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
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

  /** @param onError called when a checkpoint failed, or the worker died (the caller falls back). */
  constructor(file: string, onError: (error: string) => void, everyMs = CHECKPOINT_EVERY_MS) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, driver, everyMs } });
    this.worker.on('message', (m: { error?: string }) => m.error && onError(m.error));
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
