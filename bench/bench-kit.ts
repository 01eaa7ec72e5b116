/** Shared pieces of the benchmarks: a server child process, a terminal farm child, titles, RSS, medians. */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { MediaStore } from '../server/content/media-store.ts';
import { SqliteRepository } from '../server/store/sqlite.ts';
import { RentalClient, type SocketLike } from '../shared/rental-client.ts';
import { freePort, type ServerProcess, spawnServer } from '../test/reliability/server-process.ts';
import { percentile } from './percentile.ts';

export const socket = (url: string) => new WebSocket(url) as unknown as SocketLike;
export const MiB = 1024 * 1024;

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/**
 * User plus system CPU of a process, all its threads; with `mainThread`, of its main thread alone
 * (the event loop, whose busy share decides how long messages wait).
 */
export function cpuSeconds(pid: number, mainThread = false): number {
  // Fields 14 and 15 of /proc/PID/stat.
  const fields = statFields(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`);
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks; 100 per second on Linux
}

/** Minor page faults of a process so far (field 10 of /proc/PID/stat): costly on a paravirtualised VM. */
export function minorFaults(pid: number): number {
  return Number(statFields(`/proc/${pid}/stat`)[7]);
}

/** The fields of a stat file from the third on: those after the command name in parentheses. */
function statFields(file: string): string[] {
  const stat = readFileSync(file, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Minor page faults per unit of work since this call: `faultMeter(pid)(units)`. */
export function faultMeter(pid: number): (units: number) => number {
  const start = minorFaults(pid);
  return (units) => (minorFaults(pid) - start) / units;
}

/** CPU milliseconds per unit of work since this call: `cpuMeter(pid)(units)`. */
export function cpuMeter(pid: number, mainThread = false): (units: number) => number {
  const start = cpuSeconds(pid, mainThread);
  return (units) => ((cpuSeconds(pid, mainThread) - start) * 1000) / units;
}

/**
 * The share of the machine's CPU time the hypervisor gave to others since this call (the "steal"
 * column of /proc/stat), as a fraction: `stealMeter()()`. On this project's VMs a measure's spread
 * follows the host's load; this says how busy the host was while a measure ran. A nested VM may
 * report less than it loses.
 */
export function stealMeter(): () => number {
  const read = () => {
    const cpu = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string)
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal: the total of all, and steal.
    const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, steal: cpu[7] ?? 0 };
  };
  const start = read();
  return () => {
    const now = read();
    const total = now.total - start.total;
    return total > 0 ? (now.steal - start.steal) / total : 0;
  };
}

/** The median of some runs, and how the table shows them ("median of a, b, c" when more than one). */
export function median(runs: number[]): { value: number; shown: string } {
  const value = percentile(
    [...runs].sort((a, b) => a - b),
    50,
  );
  const shown = runs.length > 1 ? ` (median of ${runs.map((r) => r.toFixed(0)).join(', ')})` : '';
  return { value, shown };
}

/**
 * Add a title of `bytes` to a data folder: a WebM magic number and pseudo-random filler. Delivery
 * never looks inside the media, so this costs what a real film of that size costs.
 */
export async function addTitle(dataDir: string, itemNumber: number, bytes: number): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, `bench-${itemNumber}.webm`);
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4 * MiB);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
  block.writeUInt32BE(0x1a45dfa3, 0);
  for (let done = 0; done < bytes; done += block.length)
    writeSync(fd, block, 0, Math.min(block.length, bytes - done));
  closeSync(fd);
  const repo = new SqliteRepository(join(dataDir, 'rental.sqlite'));
  await new MediaStore(dataDir, repo).ingest(
    file,
    {
      itemNumber,
      title: `Bench ${bytes / MiB} MiB`,
      genre: 'Bench',
      priceCents: 0,
      durationSeconds: 1,
      codecs: 'vp9',
    },
    undefined,
    false,
  );
  await repo.close();
  rmSync(file); // the media store keeps its own copy
}

/** The real server for a measure; its log lines go to DATADIR-server.log (see spawnServer). */
export async function startServer(dataDir: string, extra: string[] = []): Promise<ServerProcess> {
  return spawnServer(
    dataDir,
    await freePort(),
    [
      '--min-rental-seconds',
      '1',
      '--orders-per-minute',
      '10000000',
      '--messages-per-second',
      '1000000',
      '--connections-per-ip',
      '100000',
      ...extra,
    ],
    `${dataDir}-server.log`,
  );
}

export type FarmEvent = {
  t: string;
  i: number;
  orderId?: string;
  at?: number;
  ms?: number;
  bytes?: number;
  mb?: number;
  terminalId?: string;
  code?: string;
  message?: string;
};

export class Farm {
  readonly child: ChildProcess;
  readonly events: FarmEvent[] = [];
  private waiters: (() => void)[] = [];
  /** How the farm ended, once it has: nothing it was asked for will come any more. */
  private exited: string | undefined;

  /**
   * @param only the kinds of events to report (errors always are); all when not given. Each event is
   *   a line the farm writes and this process parses, on the cores the measure runs on.
   */
  constructor(serverWsUrl: string, count: number, dir: string, firstFrame = false, only?: string[]) {
    this.child = spawn(
      process.execPath,
      [
        // RENTAL_FARM_NODE_ARGS="--cpu-prof" profiles the terminals' side of a benchmark.
        ...(process.env.RENTAL_FARM_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        '--import',
        'tsx',
        'bench/terminal-farm.ts',
        '--server',
        serverWsUrl,
        '--count',
        String(count),
        '--dir',
        dir,
        ...(firstFrame ? ['--first-frame'] : []),
        ...(only ? ['--only', only.join(',')] : []),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let e: FarmEvent;
      try {
        e = JSON.parse(line) as FarmEvent;
      } catch {
        return; // a line cut short as the farm is stopped; nothing waits for it any more
      }
      if (e.t === 'error') process.stderr.write(`farm: ${e.message}\n`);
      this.events.push(e);
      for (const w of this.waiters.splice(0)) w();
    });
    // 'close', not 'exit': by then every line the farm wrote has been read.
    this.child.on('close', (code, signal) => {
      this.exited = signal ?? `code ${code}`;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async waitFor(pred: (e: FarmEvent) => boolean, n = 1, timeoutMs = 180_000): Promise<FarmEvent[]> {
    const deadline = Date.now() + timeoutMs;
    const hits: FarmEvent[] = [];
    // Each look takes only the events that came since the last: filtering all of them for every line
    // that came in (tens of thousands by the end of the orders measure) made this process a load on
    // the cores the measure runs on, just as the last licences were arriving.
    for (let seen = 0; ; ) {
      for (; seen < this.events.length; seen++) {
        const e = this.events[seen] as FarmEvent;
        if (pred(e)) hits.push(e);
      }
      if (hits.length >= n) return hits;
      if (this.exited) throw new Error(`farm: exited (${this.exited}) while waiting (${hits.length}/${n})`);
      if (Date.now() > deadline) throw new Error(`farm: timed out waiting (${hits.length}/${n})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1000);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(cmd: Record<string, unknown>): void {
    this.child.stdin?.write(`${JSON.stringify(cmd)}\n`);
  }

  /** SIGTERM (the farm exits cleanly, writing a CPU profile if asked), SIGKILL if it lingers. */
  stop(): void {
    this.child.kill('SIGTERM');
    setTimeout(() => this.child.kill('SIGKILL'), 5000).unref();
  }
}

/** Links a farm's terminals to new customers, five each (`prefix` keeps a second farm's e-mails apart). */
export async function linkFarm(server: ServerProcess, farm: Farm, count: number, prefix = 'bench') {
  const welcomes = await farm.waitFor((e) => e.t === 'welcome', count);
  const byIndex = new Map(welcomes.map((w) => [w.i, w]));
  const clients: RentalClient[] = [];
  const terminals: { i: number; terminalId: string; client: RentalClient }[] = [];
  for (let i = 0; i < count; i += 5) {
    const client = new RentalClient(server.wsUrl, socket, 120_000);
    await client.connect();
    await client.request('auth.register', {
      email: `${prefix}${i}@example.com`,
      password: 'bench password',
      name: 'Bench',
    });
    clients.push(client);
    for (let k = i; k < Math.min(count, i + 5); k++) {
      const w = byIndex.get(k) as FarmEvent;
      await client.request('terminal.link', { code: w.code as string, name: `Bench ${k}` });
      terminals.push({ i: k, terminalId: w.terminalId as string, client });
    }
  }
  return { clients, terminals };
}

/**
 * The raw limit of the transport: `bytes` over one loopback TCP connection from this process to
 * another Node process that reads and drops them, with the I/O pattern of a delivery and nothing
 * else: the sending side writes `writeBytes` at a time from reused buffers, honouring back-pressure
 * (the server writes a block of eight chunk messages in one write), and the receiving side connects
 * and reads into one 256 KiB buffer (`onread`, as the headless terminal does). No WebSocket, no
 * cipher, no disk: what two processes on this machine's kernel can move at most. Also what moving a
 * MiB costs both processes in CPU (user + system, the kernel's copies and TCP included), as on a
 * machine of few cores that cost is taken from the cipher's.
 */
export async function rawLoopback(
  bytes: number,
  writeBytes: number,
): Promise<{ rate: number; cpuMsPerMiB: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const connected = new Promise<Socket>((resolve) => server.once('connection', resolve));
  // The sink's CPU is counted from its first bytes, not from its start-up, and sent back as it ends;
  // a sink that cannot connect exits, which fails the measure instead of hanging it.
  const sink = spawn(
    process.execPath,
    [
      '-e',
      `let n = 0, u0; const s = require('node:net').connect({ port: ${port}, host: '127.0.0.1', onread: { buffer: Buffer.allocUnsafeSlow(256 * 1024), callback: (got) => {
         u0 ??= process.cpuUsage(); const was = n; n += got;
         if (was < ${bytes} && n >= ${bytes}) { const u = process.cpuUsage(u0); s.end(String(u.user + u.system)); }
       } } }); s.on('error', () => process.exit(1));`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  try {
    const exited = new Promise<never>((_, reject) =>
      sink.once('exit', () => reject(new Error('the loopback sink exited'))),
    );
    exited.catch(() => undefined);
    const socket = await Promise.race([connected, exited]);
    socket.setNoDelay(true);
    const writes = Array.from({ length: 8 }, () => Buffer.alloc(writeBytes, 7));
    const done = new Promise<number>((resolve) => {
      let reply = '';
      socket.on('data', (d) => {
        reply += d.toString();
      });
      socket.once('end', () => resolve(reply ? Number(reply) : Number.NaN));
    });
    const t = performance.now();
    const cpu0 = process.cpuUsage();
    for (let sent = 0, i = 0; sent < bytes; i++) {
      const w = writes[i % writes.length] as Buffer;
      const part = Math.min(w.length, bytes - sent);
      sent += part;
      if (!socket.write(part === w.length ? w : w.subarray(0, part)))
        await new Promise((r) => socket.once('drain', r));
    }
    const sinkCpuUs = await Promise.race([done, exited]);
    const ms = performance.now() - t;
    const sender = process.cpuUsage(cpu0);
    socket.destroy();
    if (!Number.isFinite(sinkCpuUs)) throw new Error('the loopback sink did not report its CPU');
    const mib = bytes / MiB;
    return { rate: mib / (ms / 1000), cpuMsPerMiB: (sender.user + sender.system + sinkCpuUs) / 1000 / mib };
  } finally {
    sink.kill();
    server.close();
  }
}
