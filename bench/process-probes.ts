/**
 * Probes for a benchmark's server or farm process, to line a latency tail up with what the process
 * was doing (docs/benchmarks-history.md, the fourteenth session). Loaded before the process's own code:
 *
 *   BENCH_PROBE_LOG=/tmp/probes RENTAL_SERVER_NODE_ARGS="--import tsx --import ./bench/process-probes.ts" \
 *     RENTAL_FARM_NODE_ARGS="--import tsx --import ./bench/process-probes.ts" \
 *     BENCH_DEBUG=1 npm run bench -- --only orders
 *   npx tsx bench/process-probes.ts /tmp/probes-<pid>.txt      # a summary by wall-clock second
 *   npx tsx bench/process-probes.ts --orders /tmp/probes-orders.json /tmp/probes-*.txt
 *     # the 1,000/s run's slowest orders against every process's major collections
 *
 * With the probes on, the bench writes the 1,000/s run's orders (when each was placed, and its
 * milliseconds to the licence) to <BENCH_PROBE_LOG>-orders.json.
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
import { argsOrExit, parseCli, UsageError } from '../server/cli-args.ts';
import { percentile } from './percentile.ts';

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

/** An order of the paced run: when it was placed (epoch ms) and its milliseconds to the licence. */
export type PacedOrder = [placedAt: number, ms: number];
/**
 * A major collection's cost starts before its final pause (the probes see only that pause): V8
 * marks the heap beside the program first, on the cores the orders need. An order counts as under
 * way during one if its life meets the pause or the MARKING_LEAD_MS before it.
 */
export const MARKING_LEAD_MS = 80;

/**
 * How much of the tail the major collections explain: of the slowest hundredth of the orders, how
 * many were under way during one (`pauses`: each collection's start and pause, epoch ms), and the
 * p99 of the orders that met none.
 */
export function tailAgainstCollections(orders: PacedOrder[], pauses: [start: number, ms: number][]) {
  const meets = ([placed, ms]: PacedOrder) =>
    pauses.some(([start, pause]) => placed <= start + pause && start - MARKING_LEAD_MS <= placed + ms);
  const slowest = [...orders]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Math.max(1, Math.floor(orders.length / 100)));
  const clear = orders.filter((o) => !meets(o)).map((o) => o[1]);
  return {
    orders: orders.length,
    slowest: slowest.length,
    slowestDuringCollection: slowest.filter(meets).length,
    duringCollection: orders.length - clear.length,
    p99: percentile(
      orders.map((o) => o[1]).sort((a, b) => a - b),
      99,
    ),
    p99Clear: percentile(
      clear.sort((a, b) => a - b),
      99,
    ),
  };
}

/** The orders file the bench writes: checked, as it comes from outside this process. */
function readOrders(file: string): PacedOrder[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--orders: cannot read ${file}: ${(err as Error).message}`);
  }
  const ok =
    Array.isArray(parsed) &&
    parsed.every(
      (o) =>
        Array.isArray(o) && o.length === 2 && o.every((v) => typeof v === 'number' && Number.isFinite(v)),
    );
  if (!ok) throw new UsageError(`--orders: ${file} is not a list of [placed at, ms] pairs`);
  return parsed as PacedOrder[];
}

/** Each probe file's major collections inside the orders' span, and the tail against all of them. */
function tailReport(ordersFile: string, probeFiles: string[]): void {
  const orders = readOrders(ordersFile);
  if (orders.length === 0) throw new UsageError(`--orders: ${ordersFile} holds no orders`);
  const from = Math.min(...orders.map((o) => o[0])) - MARKING_LEAD_MS;
  const to = Math.max(...orders.map((o) => o[0] + o[1]));
  const pauses: [number, number][] = [];
  for (const file of probeFiles) {
    const mine: [number, number][] = [];
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [at, what, kind, ms] = line.split(' ');
      if (what === 'gc' && kind === 'major' && Number(at) >= from && Number(at) <= to)
        mine.push([Number(at), Number(ms)]);
    }
    console.log(
      `${file}: ${mine.length} major collections during the run (${mine.length ? `pauses ${mine.map((p) => p[1].toFixed(1)).join(', ')} ms` : 'none'})`,
    );
    pauses.push(...mine);
  }
  const t = tailAgainstCollections(orders, pauses);
  console.log(
    `${t.orders} orders, p99 ${t.p99} ms; of the ${t.slowest} slowest, ${t.slowestDuringCollection} were under way during a major collection (or the ${MARKING_LEAD_MS} ms before its pause); without the ${t.duringCollection} orders that were, p99 ${t.p99Clear} ms`,
  );
}

const USAGE =
  'usage: npx tsx bench/process-probes.ts PROBE_FILE\n       npx tsx bench/process-probes.ts --orders ORDERS_JSON PROBE_FILE...';
const prefix = process.env.BENCH_PROBE_LOG;
if (prefix && isMainThread) install(prefix);
else if (!prefix && process.argv[1]?.endsWith('process-probes.ts')) {
  const { orders, files } = argsOrExit(() => {
    const { values, positionals } = parseCli(process.argv.slice(2), { orders: { type: 'string' } }, true);
    if (positionals.length === 0) throw new UsageError('name at least one probe file');
    if (values.orders === undefined && positionals.length > 1)
      throw new UsageError('one probe file at a time, or --orders with several');
    return { orders: values.orders as string | undefined, files: positionals };
  }, USAGE);
  try {
    if (orders === undefined) summarize(files[0] as string);
    else tailReport(orders, files);
  } catch (err) {
    if (!(err instanceof UsageError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
}
