/**
 * The raw parts of one order, for the orders measures' raw limit: what any server and terminal of
 * this design must do per order, each done alone here, in the same run, for its CPU on this machine.
 *
 * - The licence: its sealed box and signature (server), and its check (terminal), with sodium-native.
 * - The order's row in SQLite (WAL, synchronous=NORMAL), committed `perCommit` at a time, each
 *   commit followed by an fdatasync of the WAL, as the server acknowledges orders.
 * - Four WebSocket round trips between two processes, both ends' CPU: the order and its answer, the
 *   licence and its acknowledgement, the title's offer and its acceptance, its chunk and the
 *   progress report. Messages of a licence's size, measured twice: many in flight, as in a busy
 *   second, where one wake-up of a process serves several messages; and one at a time, as orders
 *   arriving a millisecond apart travel, where every message wakes its receiver.
 * - The terminal's copy of the licence: a new folder, the file written to a temporary name, synced,
 *   and renamed into place, in the folder the benchmark's terminals use.
 *
 * Everything else an order costs here (the server's bookkeeping, the other rows, the customer's
 * updates, the title's content file) is the code's, not the floor's. Each part is the best of three
 * passes: on this machine a pass can only come out slower than its limit.
 */
import { spawn } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { WebSocket } from 'ws';
import type { SodiumNative } from '../server/native-sodium.ts';

export interface OrderFloor {
  /** CPU per order, µs, of each part. */
  licenceIssueUs: number;
  licenceCheckUs: number;
  orderRowUs: number;
  /** The four round trips with many messages in flight, and with one at a time. */
  messagesUs: number;
  messagesAloneUs: number;
  licenceStoreUs: number;
  /** Their sum, and the orders a second it allows on `cores` cores kept busy. */
  totalUs: number;
  ordersPerSecond: number;
  /** The sum with each message alone: what an order costs when orders come one at a time. */
  totalAloneUs: number;
}

type Native = SodiumNative & {
  crypto_sign_keypair(pk: Buffer, sk: Buffer): void;
  crypto_box_keypair(pk: Buffer, sk: Buffer): void;
};

/** A licence's JSON and signature as they travel are about this long (the orders measure's are 700-760). */
const LICENCE_BYTES = 700;
const ROUND_TRIPS_PER_ORDER = 4;
/** Messages in flight in a busy second's measure (the max run keeps 200 orders in flight). */
const IN_FLIGHT = 16;

/** CPU µs per unit of `f(n)` (this process, all threads), the best of three passes. */
function cpuPerUnit(n: number, f: (n: number) => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 3; pass++) {
    const u0 = process.cpuUsage();
    f(n);
    const u = process.cpuUsage(u0);
    best = Math.min(best, (u.user + u.system) / n);
  }
  return best;
}

function licenceCrypto(sn: Native, n: number): { issue: number; check: number } {
  const pk = Buffer.alloc(32);
  const sk = Buffer.alloc(64);
  sn.crypto_sign_keypair(pk, sk);
  const boxPk = Buffer.alloc(32);
  const boxSk = Buffer.alloc(32);
  sn.crypto_box_keypair(boxPk, boxSk);
  const key = Buffer.alloc(32, 1);
  const sealed = Buffer.alloc(sn.crypto_box_SEALBYTES + key.length);
  const body = Buffer.alloc(LICENCE_BYTES, 0x61);
  const sig = Buffer.alloc(sn.crypto_sign_BYTES);
  const issue = cpuPerUnit(n, (k) => {
    for (let i = 0; i < k; i++) {
      sn.crypto_box_seal(sealed, key, boxPk);
      sn.crypto_sign_detached(sig, body, sk);
    }
  });
  let ok = true;
  const check = cpuPerUnit(n, (k) => {
    for (let i = 0; i < k; i++) ok = sn.crypto_sign_verify_detached(sig, body, pk) && ok;
  });
  if (!ok) throw new Error('the floor measure made a signature that does not verify');
  return { issue, check };
}

function orderRows(dir: string, n: number, perCommit: number): number {
  const file = join(dir, 'order-floor.sqlite');
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(
      'CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT, terminal TEXT, item INTEGER, placed INTEGER, licence TEXT)',
    );
    const insert = db.prepare('INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)');
    const wal = openSync(`${file}-wal`, 'r');
    const licence = 'a'.repeat(LICENCE_BYTES);
    let k = 0;
    const commit = db.transaction((rows: number) => {
      for (let j = 0; j < rows; j++, k++) insert.run(`order-${k}`, 'customer', 'terminal', 904, k, licence);
    });
    try {
      return cpuPerUnit(n, (count) => {
        for (let i = 0; i < count; i += perCommit) {
          commit(Math.min(perCommit, count - i));
          fdatasyncSync(wal);
        }
      });
    } finally {
      closeSync(wal);
    }
  } finally {
    db.close();
    for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  }
}

function licenceStores(dir: string, n: number): number {
  const root = join(dir, 'order-floor-terminal');
  const data = Buffer.alloc(LICENCE_BYTES, 0x61);
  let k = 0;
  try {
    return cpuPerUnit(n, (count) => {
      for (let i = 0; i < count; i++, k++) {
        const folder = join(root, String(k));
        mkdirSync(folder, { recursive: true });
        const file = join(folder, 'licence.json');
        const fd = openSync(`${file}.tmp`, 'w', 0o600);
        writeSync(fd, data);
        fdatasyncSync(fd);
        closeSync(fd);
        renameSync(`${file}.tmp`, file);
      }
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * WebSocket round trips between this process and an echoing child (the `ws` library at both ends,
 * as server and terminals use it), `inFlight` at a time; CPU µs per round trip, both processes,
 * for each of `inFlights`.
 */
async function messageRoundTrips(n: number, inFlights: number[]): Promise<number[]> {
  const wsPath = createRequire(import.meta.url).resolve('ws');
  const echo = spawn(
    process.execPath,
    [
      '-e',
      `const { WebSocketServer } = require(${JSON.stringify(wsPath)});
       const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
       wss.on('listening', () => process.stdout.write(wss.address().port + '\\n'));
       wss.on('connection', (ws) => { let u0;
         ws.on('message', (d, bin) => { u0 ??= process.cpuUsage(); if (String(d) === 'cpu') { const u = process.cpuUsage(u0); u0 = undefined; ws.send(String(u.user + u.system)); } else ws.send(d, { binary: bin }); });
       });
       process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      echo.once('exit', () => reject(new Error('the WebSocket echo exited')));
      echo.stdout?.once('data', (d) => resolve(Number(String(d).trim())));
    });
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const message = JSON.stringify({
      type: 'licence.deliver',
      orderId: 'o'.repeat(36),
      licence: 'a'.repeat(LICENCE_BYTES),
    });
    // A connection that drops mid-pass fails the measure instead of leaving it waiting.
    const dropped = new Promise<never>((_, reject) => {
      ws.once('close', () => reject(new Error('the WebSocket echo closed the connection')));
      ws.once('error', reject);
    });
    dropped.catch(() => undefined);
    const bests: number[] = [];
    for (const inFlight of inFlights) {
      let best = Number.POSITIVE_INFINITY;
      for (let pass = 0; pass < 3; pass++) {
        const u0 = process.cpuUsage();
        const passDone = new Promise<void>((resolve) => {
          let sent = 0;
          let got = 0;
          const onMessage = () => {
            got++;
            if (got === n) {
              ws.off('message', onMessage);
              resolve();
            } else if (sent < n) {
              sent++;
              ws.send(message);
            }
          };
          ws.on('message', onMessage);
          for (; sent < Math.min(inFlight, n); sent++) ws.send(message);
        });
        await Promise.race([passDone, dropped]);
        const mine = process.cpuUsage(u0);
        // The echo's CPU since this pass's first message, asked for once the pass is over.
        const reported = new Promise<number>((resolve) => {
          ws.once('message', (d) => resolve(Number(String(d))));
          ws.send('cpu');
        });
        const theirs = await Promise.race([reported, dropped]);
        if (!Number.isFinite(theirs)) throw new Error('the WebSocket echo did not report its CPU');
        best = Math.min(best, (mine.user + mine.system + theirs) / n);
      }
      bests.push(best);
    }
    ws.close();
    return bests;
  } finally {
    echo.stdin?.end();
    echo.kill();
  }
}

/**
 * Measures each part (`orders` of each; fewer in a quick run), in `dbDir` (the server's disk) and
 * `terminalDir` (the terminals' folder); `perCommit` orders share a database commit.
 */
export async function measureOrderFloor(
  sn: SodiumNative,
  opts: { orders: number; dbDir: string; terminalDir: string; perCommit: number; cores: number },
): Promise<OrderFloor> {
  const crypto = licenceCrypto(sn as Native, opts.orders);
  const orderRowUs = orderRows(opts.dbDir, opts.orders, opts.perCommit);
  const licenceStoreUs = licenceStores(opts.terminalDir, opts.orders);
  const [busy = Number.NaN, alone = Number.NaN] = await messageRoundTrips(opts.orders, [IN_FLIGHT, 1]);
  const messagesUs = ROUND_TRIPS_PER_ORDER * busy;
  const messagesAloneUs = ROUND_TRIPS_PER_ORDER * alone;
  const others = crypto.issue + crypto.check + orderRowUs + licenceStoreUs;
  const totalUs = others + messagesUs;
  return {
    licenceIssueUs: crypto.issue,
    licenceCheckUs: crypto.check,
    orderRowUs,
    messagesUs,
    messagesAloneUs,
    licenceStoreUs,
    totalUs,
    ordersPerSecond: (opts.cores * 1e6) / totalUs,
    totalAloneUs: others + messagesAloneUs,
  };
}
