/**
 * Probes for a benchmark's server or farm process, to line a latency tail up with what the process
 * was doing (docs/benchmarks-history.md, the fourteenth session). Loaded before the process's own code:
 *
 *   BENCH_PROBE_LOG=/tmp/probes RENTAL_SERVER_NODE_ARGS="--import tsx --import ./bench/process-probes.ts" \
 *     RENTAL_FARM_NODE_ARGS="--import tsx --import ./bench/process-probes.ts" \
 *     BENCH_DEBUG=1 npm run bench -- --only orders
 *   npx tsx bench/process-probes.ts /tmp/probes-<pid>.txt      # a summary by wall-clock second
 *
 * (tsx first: these flags come before the process's own.) Each process appends, main thread only:
 *   <epoch ms> gc <minor|major|incremental|weak> <pause ms>       every garbage collection
 *   <epoch ms> sync <fdatasync|fsync> <ms>                        every flush over 2 ms made through
 *     fs.fdatasync / fs.fsync on the main thread: the server's WAL, the farm's content. Flushes on
 *     worker threads (SQLite's checkpoints, the farm's file worker replacing records) are not seen.
 * Not part of any measure: the probes cost a little CPU of their own.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

type Callback = (err: NodeJS.ErrnoException | null) => void;
const SLOW_SYNC_MS = 2;

function install(prefix: string): void {
  const file = `${prefix}-${process.pid}.txt`;
  let lines: string[] = [];
  const flush = () => {
    if (lines.length === 0) return;
    appendFileSync(file, lines.join(''));
    lines = [];
  };
  setInterval(flush, 1000).unref();
  process.on('exit', flush);

  const kinds: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak',
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? -1;
      lines.push(
        `${(performance.timeOrigin + e.startTime).toFixed(0)} gc ${kinds[kind] ?? kind} ${e.duration.toFixed(2)}\n`,
      );
    }
  }).observe({ entryTypes: ['gc'] });

  // The callback forms the server uses for its WAL (and the farm for content), timed to their callback.
  const fs = createRequire(import.meta.url)('node:fs') as Record<string, unknown>;
  for (const name of ['fdatasync', 'fsync']) {
    const original = fs[name] as (fd: number, cb: Callback) => void;
    fs[name] = (fd: number, cb: Callback) => {
      const start = performance.now();
      original(fd, (err) => {
        const ms = performance.now() - start;
        if (ms > SLOW_SYNC_MS) lines.push(`${Date.now()} sync ${name} ${ms.toFixed(1)}\n`);
        cb(err);
      });
    };
  }
  syncBuiltinESMExports(); // `import { fdatasync } from 'node:fs'` sees the timed one too
}

/** Per wall-clock second: collections (count, pause ms in all, longest) and slow flushes (count, longest). */
function summarize(file: string): void {
  const seconds = new Map<
    number,
    { gc: number; gcMs: number; gcMax: number; sync: number; syncMax: number }
  >();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [at, what, , ms] = line.split(' ');
    if (!at || !ms) continue;
    const s = Math.floor(Number(at) / 1000);
    const row = seconds.get(s) ?? { gc: 0, gcMs: 0, gcMax: 0, sync: 0, syncMax: 0 };
    const v = Number(ms);
    if (what === 'gc') {
      row.gc++;
      row.gcMs += v;
      row.gcMax = Math.max(row.gcMax, v);
    } else {
      row.sync++;
      row.syncMax = Math.max(row.syncMax, v);
    }
    seconds.set(s, row);
  }
  for (const [s, r] of [...seconds].sort((a, b) => a[0] - b[0]))
    console.log(
      `${new Date(s * 1000).toISOString().slice(11, 19)}  gc ${r.gc} (${r.gcMs.toFixed(0)} ms, longest ${r.gcMax.toFixed(1)})  slow flushes ${r.sync} (longest ${r.syncMax.toFixed(1)} ms)`,
    );
}

const prefix = process.env.BENCH_PROBE_LOG;
if (prefix && isMainThread) install(prefix);
else if (!prefix && process.argv[1]?.endsWith('process-probes.ts') && process.argv[2])
  summarize(process.argv[2]);
