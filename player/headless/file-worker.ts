/**
 * The headless terminal's small file operations, each done whole on one worker thread: replacing a
 * record (make its folder, write a temporary file, sync, close, rename) and opening a rental's
 * content file. Done through libuv's pool, each step was its own round trip, and on a busy
 * two-core machine a round trip cost the event loop 25 µs (hand-off, wake-up, completion): file
 * calls were 39 % of the terminals' event loop in the orders benchmark, fifteen of them per rental.
 * Here a whole replace is part of one message each way. The descriptors the worker opens belong to the
 * process, so the event loop writes and syncs content through them as before (on libuv's pool,
 * which runs several at once: big writes and syncs should not queue behind each other here).
 */
import { Worker } from 'node:worker_threads';
import { ChurnMap } from '../../shared/churn-map.ts';

/**
 * The worker's code, plain JavaScript: the installed `rental-terminal` command loads TypeScript
 * through tsx hooks registered on its main thread only, which a worker does not inherit.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
function writeAll(fd, data, at = 0) {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done, at + done);
}
const ops = {
  replace({ dir, file, data, durable }) {
    if (dir) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = file + '.tmp';
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      writeAll(fd, data);
      if (durable) fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  },
  open({ dir, file }) {
    if (dir) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  },
  storeWhole({ dir, file, chunks, recordFile, record }) {
    const fd = ops.open({ dir, file });
    try {
      let at = 0;
      for (const c of chunks) {
        writeAll(fd, c, at);
        at += c.length;
      }
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    // The record last: it says the chunks are there, so they are on disk first.
    ops.replace({ file: recordFile, data: record, durable: true });
  },
};
parentPort.on('message', (batch) => {
  const replies = [];
  for (const m of batch) {
    try {
      replies.push({ id: m.id, value: ops[m.op](m) });
    } catch (e) {
      replies.push({ id: m.id, error: { message: String(e && e.message), code: e && e.code } });
    }
  }
  parentPort.postMessage(replies);
});
`;

type Op =
  | { op: 'replace'; dir?: string; file: string; data: string | Uint8Array; durable: boolean }
  | { op: 'open'; dir?: string; file: string }
  | {
      op: 'storeWhole';
      dir?: string;
      file: string;
      chunks: Uint8Array[];
      recordFile: string;
      record: string;
    };

interface Reply {
  id: number;
  value?: unknown;
  error?: { message: string; code?: string };
}

/** One worker per process, shared by every folder storage in it; made on first use, again after a crash. */
let worker: Worker | undefined;
let nextId = 0;
/** Requests the worker has not answered (a ChurnMap: each waits milliseconds; see shared/churn-map.ts). */
const waiting = new ChurnMap<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

function failAll(err: Error) {
  worker = undefined;
  for (const w of waiting.drain()) w.reject(err);
}

function theWorker(): Worker {
  if (worker) return worker;
  // The descriptors it opens are the event loop's to use and close: a worker that tracked them
  // (Node's default) would warn when a number comes round again and close them all if it stopped.
  // No flags of the process (a loader, --input-type=module): its code is plain CommonJS.
  const w = new Worker(WORKER_SOURCE, { eval: true, trackUnmanagedFds: false, execArgv: [] });
  w.on('message', (replies: Reply[]) => {
    for (const m of replies) {
      const p = waiting.get(m.id);
      if (!p) continue;
      waiting.delete(m.id);
      if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else p.resolve(m.value);
    }
    // Idle, the worker must not keep the process alive; busy, it must (someone awaits it).
    if (waiting.size === 0) w.unref();
  });
  w.on('error', (err) => {
    if (worker === w) failAll(err);
  });
  w.on('exit', (code) => {
    if (worker === w) failAll(new Error(`the file worker stopped (exit code ${code})`));
  });
  w.unref();
  worker = w;
  return w;
}

/**
 * Operations asked for in one turn of the event loop go in one message (a message cost the event
 * loop about as much as the work it carried: 10 % of a farm of terminals' event loop, one message
 * per operation). The worker does them in order and answers them in one message.
 */
let batch: (Op & { id: number })[] = [];
function send() {
  const ops = batch;
  batch = [];
  const w = theWorker();
  w.ref();
  w.postMessage(ops);
}

function call<T>(op: Op): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    if (batch.length === 0) setImmediate(send);
    batch.push({ id, ...op });
  });
}

/** Replace `file` whole or not at all (synced unless `durable` is false), making `dir` first if given. */
export const replaceFile = (file: string, data: string | Uint8Array, durable: boolean, dir?: string) =>
  call<void>({ op: 'replace', file, data, durable, dir });

/**
 * A small title that arrived whole, in one step: its chunks written back to back from the start of
 * `file` (made if missing, `dir` first if given), synced, closed, and then `record` durably
 * replacing `recordFile`. The chunks are copied into the message: callers keep this to small titles.
 */
export const storeWholeFile = (
  file: string,
  chunks: Uint8Array[],
  recordFile: string,
  record: string,
  dir?: string,
) => call<void>({ op: 'storeWhole', file, chunks, recordFile, record, dir });

/** Open `file` to read and write, made if missing, never truncated; `dir` made first if given. */
export const openReadWrite = (file: string, dir?: string) => call<number>({ op: 'open', file, dir });
