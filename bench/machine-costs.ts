/**
 * What this machine charges for the three things every hand-off in the product pays for: a system
 * call, a page of memory new to the process, and waking another thread. On this project's VMs
 * (paravirtualised, page-table isolation without PCID) a system call took about 1 µs and a page
 * fault about 10 µs, many times what bare metal takes; the table prints them beside the figures so
 * that a run on another machine can be read against its own.
 */
import { fstatSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

/** µs a system call costs from JavaScript, less the same loop's cost without one (a vDSO clock read). */
export function systemCallMicros(calls = 200_000): number {
  // getuid goes to the kernel every time (neither Node nor libc caches it); fstat where it is missing.
  const getuid = process.getuid;
  const call = getuid ? () => getuid() : () => fstatSync(0);
  const time = (f: () => unknown) => {
    const t = performance.now();
    for (let i = 0; i < calls; i++) f();
    return performance.now() - t;
  };
  time(call); // compiled before it is timed
  const withCall = time(call);
  const without = time(() => process.hrtime.bigint());
  return (Math.max(0, withCall - without) / calls) * 1000;
}

/** µs a first touch of a 4 KiB page of new memory costs (a minor fault), less touching it again. */
export function pageFaultMicros(mib = 64): number {
  const pages = (mib * 1024 * 1024) / 4096;
  // A WebAssembly.Memory is a mapping of its own, never a pooled slab the process has touched.
  const buf = new Uint8Array(new WebAssembly.Memory({ initial: pages / 16 }).buffer);
  const touch = (v: number) => {
    const t = performance.now();
    for (let i = 0; i < buf.length; i += 4096) buf[i] = v;
    return performance.now() - t;
  };
  const cold = touch(1);
  const warm = touch(2);
  return (Math.max(0, cold - warm) / pages) * 1000;
}

/**
 * µs for waking a worker thread that sleeps on a futex and being woken by it in turn
 * (`Atomics.notify`/`Atomics.wait`): the least a hand-off to a thread and back can cost here.
 */
export async function wakeRoundTripMicros(trips = 5000): Promise<number> {
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
const f = new Int32Array(workerData);
for (;;) {
  Atomics.wait(f, 0, 0);
  if (f[0] === 2) break;
  Atomics.store(f, 0, 0);
  Atomics.store(f, 1, 1);
  Atomics.notify(f, 1);
}`,
    { eval: true, workerData: flags.buffer },
  );
  try {
    await new Promise((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', reject);
    });
    const trip = () => {
      Atomics.store(flags, 1, 0);
      Atomics.store(flags, 0, 1);
      Atomics.notify(flags, 0);
      // Bounded: a worker that died cannot hang the benchmark.
      if (Atomics.wait(flags, 1, 0, 1000) === 'timed-out') throw new Error('the woken thread did not answer');
    };
    for (let i = 0; i < 100; i++) trip();
    const t = performance.now();
    for (let i = 0; i < trips; i++) trip();
    return ((performance.now() - t) / trips) * 1000;
  } finally {
    Atomics.store(flags, 0, 2);
    Atomics.notify(flags, 0);
    await worker.terminate();
  }
}
