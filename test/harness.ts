/** Test helpers: a real server on an ephemeral loopback port, real sockets, real SQLite, temp folders. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { TerminalCore, type TerminalEvent, type TerminalOptions } from '../player/core/terminal-core.ts';
import type { TerminalStorage } from '../player/core/terminal-storage.ts';
import { FileStorage } from '../player/headless/file-storage.ts';
import { terminalSocket } from '../player/headless/terminal-socket.ts';
import { type RunningServer, type ServerOptions, startServer } from '../server/app.ts';
import { setQuietLogs } from '../server/log.ts';
import {
  concatBytes,
  cryptoReady,
  fromB64,
  generateIdentity,
  type Identity,
  randomBytes,
  signDetached,
  signJson,
  toB64,
} from '../shared/crypto.ts';
import { PROTOCOL_VERSION } from '../shared/protocol.ts';
import { RentalClient, type SocketLike } from '../shared/rental-client.ts';
import { freshDatabase, PG_URL } from './pg-databases.ts';

setQuietLogs(true);

export const socket = (url: string) => new WebSocket(url) as unknown as SocketLike;

const cleanups: (() => Promise<void> | void)[] = [];
export async function cleanup(): Promise<void> {
  while (cleanups.length) await cleanups.pop()?.();
}

/** Run `fn` when the current test's cleanup runs (child processes, sockets). */
export function defer(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export function tempDir(prefix = 'rd-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A server on SQLite, or, when TEST_DATABASE_URL is set (`npm run test:pg`), on a fresh PostgreSQL
 * database: the same integration suites run against both engines.
 */
export async function testServer(opts: Partial<ServerOptions> = {}): Promise<RunningServer> {
  await cryptoReady();
  let databaseUrl = opts.databaseUrl;
  if (databaseUrl === undefined && PG_URL && opts.role !== 'content') {
    const db = await freshDatabase();
    cleanups.push(db.drop);
    databaseUrl = db.url;
  }
  const server = await startServer({
    dataDir: opts.dataDir ?? tempDir(),
    port: 0,
    minRentalSeconds: 1,
    ...opts,
    ...(databaseUrl ? { databaseUrl } : {}),
  });
  let closed = false;
  const close = server.close.bind(server);
  server.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  cleanups.push(() => server.close());
  return server;
}

export async function customer(
  server: { wsUrl: string },
  email = `c${Math.random().toString(36).slice(2)}@example.com`,
) {
  const client = new RentalClient(server.wsUrl, socket);
  await client.connect();
  cleanups.push(() => client.close());
  const auth = await client.request('auth.register', {
    email,
    password: 'correct horse battery',
    name: 'Test Customer',
  });
  return Object.assign(client, { email, token: auth.token, customerId: auth.customer.customerId });
}

/** Wait until a predicate over recorded events holds. Event-driven, bounded by a timeout. */
export class EventLog {
  readonly events: (TerminalEvent & { at: number })[] = [];
  private waiters: (() => void)[] = [];
  push = (e: TerminalEvent) => {
    this.events.push({ ...e, at: Date.now() });
    for (const w of this.waiters.splice(0)) w();
  };
  find<T extends TerminalEvent['type']>(
    type: T,
    pred: (e: Extract<TerminalEvent, { type: T }>) => boolean = () => true,
  ) {
    return this.events.find((e) => e.type === type && pred(e as never)) as unknown as
      | (Extract<TerminalEvent, { type: T }> & { at: number })
      | undefined;
  }
  async waitFor<T extends TerminalEvent['type']>(
    type: T,
    pred: (e: Extract<TerminalEvent, { type: T }>) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<Extract<TerminalEvent, { type: T }> & { at: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.find(type, pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) {
        // Name what went wrong on the terminal, not only that something did.
        const detail = (e: TerminalEvent) =>
          e.type === 'local-error' || e.type === 'rejected' || e.type === 'server-error'
            ? `${e.type}(${JSON.stringify(e)})`
            : e.type;
        throw new Error(`timed out waiting for ${type}; saw ${this.events.map(detail).join(', ')}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

export async function terminal(
  server: { wsUrl: string },
  opts: Partial<TerminalOptions> & { dir?: string; storage?: TerminalStorage } = {},
) {
  const dir = opts.dir ?? tempDir('rd-term-');
  const log = new EventLog();
  const core = new TerminalCore({
    serverUrl: server.wsUrl,
    storage: opts.storage ?? new FileStorage(dir),
    socketFactory: terminalSocket,
    kind: 'headless',
    name: 'Test terminal',
    ...opts,
    onEvent: (e) => {
      log.push(e);
      opts.onEvent?.(e);
    },
  });
  await core.start();
  cleanups.push(() => core.stop());
  await log.waitFor('welcome');
  return { core, log, dir };
}

/** Register a customer and link a fresh terminal to them, as a person would with the pairing code. */
export async function linkedPair(server: RunningServer, topts: Parameters<typeof terminal>[1] = {}) {
  const c = await customer(server);
  const t = await terminal(server, topts);
  const code = t.core.pairingCode as string;
  const { terminal: view } = await c.request('terminal.link', { code, name: 'Living room' });
  await t.log.waitFor('linked');
  return { c, t, view, code };
}

export async function collect(core: TerminalCore, orderId: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  await core.decrypt(orderId, (p) => {
    parts.push(p);
  });
  return Buffer.concat(parts);
}

/** A customer rents an item for a terminal, delivered now; returns the order as the server acknowledged it. */
export async function rentNow(c: RentalClient, terminalId: string, itemNumber: number, periodSeconds = 600) {
  const { order } = await c.request('order.place', {
    itemNumber,
    terminalId,
    periodSeconds,
    schedule: { mode: 'now' },
  });
  return order;
}

/** Environment for a CLI run against a test server's store (its PostgreSQL database, or SQLite). */
export function storeEnv(server: { databaseUrl?: string }): NodeJS.ProcessEnv {
  const { DATABASE_URL: _, ...env } = process.env;
  return server.databaseUrl ? { ...env, DATABASE_URL: server.databaseUrl } : env;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until `check()` holds, or `timeoutMs` has passed (the assertion after it then says what is wrong). */
export async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check() && Date.now() < deadline; ) await sleep(20);
}

/** A terminal speaking the protocol by hand, to send what a real terminal never would. */
export async function rawTerminal(url: string, identity?: Identity, opts: { pushedOffers?: boolean } = {}) {
  const id = identity ?? generateIdentity();
  const ws = new WebSocket(url);
  const inbox: { type: string; re?: number | null; code?: string; [k: string]: unknown }[] = [];
  let wake = () => {};
  const log: string[] = [];
  let binary = 0;
  ws.on('message', (d, bin) => {
    if (bin) {
      binary++;
      log.push('binary');
      return wake();
    }
    const m = JSON.parse(d.toString());
    log.push(m.type);
    inbox.push(m);
    wake();
  });
  const next = async (pred: (m: (typeof inbox)[number]) => boolean) => {
    for (;;) {
      const i = inbox.findIndex(pred);
      if (i >= 0) return inbox.splice(i, 1)[0] as (typeof inbox)[number];
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  const hello = (await next((m) => m.type === 'server.hello')) as unknown as { nonce: string };
  const sig = signDetached(
    'terminal-auth',
    concatBytes(fromB64(hello.nonce), id.signPublicKey),
    id.signSecretKey,
  );
  ws.send(
    JSON.stringify({
      type: 'terminal.auth',
      id: 1,
      signPublicKey: toB64(id.signPublicKey),
      signature: toB64(sig),
      kind: 'headless',
      name: 'intruder',
      ...opts,
    }),
  );
  const welcome = (await next((m) => m.re === 1)).value as { terminalId: string; pairingCode: string };
  return { ws, next, seen: () => [...log], binary: () => binary, welcome };
}

/**
 * A stand-in server whose key the terminal pins at first contact (`pinned`'s): it says hello,
 * welcomes the terminal's auth, and hands every message (the auth included, after the welcome) to
 * `onMessage` with the connection. Returns the URL to give a terminal; closed by `cleanup`.
 */
export async function fakeServer(
  pinned: Identity,
  onMessage: (m: { type: string; [k: string]: unknown }, ws: WebSocket) => void,
): Promise<{ wsUrl: string }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  defer(() => new Promise<void>((r) => wss.close(() => r())));
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => {
    const send = (m: unknown) => ws.send(JSON.stringify(m));
    const nonce = toB64(randomBytes(24));
    send({
      type: 'server.hello',
      v: PROTOCOL_VERSION,
      role: 'all',
      serverPublicKey: toB64(pinned.signPublicKey),
      nonce,
      time: signJson('time', { t: Date.now(), nonce }, pinned.signSecretKey),
    });
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'terminal.auth')
        send({
          type: 'result',
          re: m.id,
          value: {
            terminalId: 'x',
            linked: true,
            pairingCode: null,
            pairingExpiresAt: null,
            contentUrls: [],
          },
        });
      onMessage(m, ws);
    });
  });
  return { wsUrl: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/ws` };
}
