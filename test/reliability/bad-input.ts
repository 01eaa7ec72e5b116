/**
 * The bad-input fuzzer: thousands of generated messages at a live server (fast-check), on an
 * unauthenticated connection and on a signed-in customer's connection, while a healthy terminal
 * receives a rental. Counts typed errors, clean closes, crashes and corruption.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { ERROR_CODES } from '../../shared/errors.ts';
import {
  CUSTOMER_TYPES,
  encodeChunkFrame,
  PEER_TYPES,
  ServerMessage,
  TERMINAL_TYPES,
} from '../../shared/protocol.ts';
import { collect, linkedPair, rentNow, testServer } from '../harness.ts';

type Case =
  | { kind: 'text'; text: string; conn: 'anon' | 'customer' }
  | { kind: 'binary'; bytes: Uint8Array; conn: 'anon' | 'customer' }
  | { kind: 'bad-utf8'; bytes: Uint8Array; conn: 'anon' | 'customer' };

const TYPES = [
  ...CUSTOMER_TYPES,
  ...TERMINAL_TYPES,
  ...PEER_TYPES,
  'nope',
  '',
  'ORDER.PLACE',
  'order.place ',
];
const KEYS = [
  'email',
  'password',
  'name',
  'token',
  'code',
  'itemNumber',
  'terminalId',
  'periodSeconds',
  'schedule',
  'orderId',
  'from',
  'have',
  'signPublicKey',
  'signature',
  'kind',
  'mac',
  'reason',
  'extra',
  '__proto__',
  'constructor',
  'type',
  'id',
];
const value = fc.oneof(
  fc.anything({ maxDepth: 3, maxKeys: 4 }),
  fc.string({ maxLength: 80 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom(null, true, 101, 0, -1, Number.MAX_SAFE_INTEGER, '0123456789abcdef0123456789abcdef'),
  fc.constantFrom({ mode: 'now' }, { mode: 'key-delivery', at: 0 }, { mode: 'delivery-start', at: 8.64e15 }),
);
const conn = fc.constantFrom('anon' as const, 'customer' as const);

/** Messages with a known type and wrong, missing or extra fields. */
const objectMessage = fc
  .record({
    type: fc.constantFrom(...TYPES),
    id: fc.oneof(fc.nat(), fc.string({ maxLength: 5 }), fc.constant(undefined), fc.double()),
    fields: fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 7 }),
  })
  .map(({ type, id, fields }) => JSON.stringify({ ...fields, type, ...(id === undefined ? {} : { id }) }));

/** Near-valid orders: one field at an edge. */
const nearOrder = fc
  .record({
    itemNumber: fc.oneof(fc.constantFrom(101, 0, -5, 1e12, 3.5), fc.integer()),
    terminalId: fc.oneof(
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
      fc.string({ maxLength: 40 }),
    ),
    periodSeconds: fc.oneof(fc.constantFrom(0, 1, 9, 10, 2_592_000, 2_592_001, -60, 1.5), fc.integer()),
    at: fc.oneof(fc.constantFrom(0, -1, 8.64e15 + 1), fc.integer()),
    mode: fc.constantFrom('now', 'delivery-start', 'key-delivery', 'later'),
  })
  .map((o) =>
    JSON.stringify({
      type: 'order.place',
      id: 1,
      itemNumber: o.itemNumber,
      terminalId: o.terminalId,
      periodSeconds: o.periodSeconds,
      schedule: o.mode === 'now' ? { mode: 'now' } : { mode: o.mode, at: o.at },
    }),
  );

const huge = fc
  .integer({ min: 1_000, max: 60_000 })
  .map((n) =>
    JSON.stringify({ type: 'auth.login', id: 2, email: `${'a'.repeat(n)}@x.io`, password: 'xxxxxxxx' }),
  );
const deep = fc
  .integer({ min: 20, max: 20_000 })
  .chain((d) =>
    fc.constantFrom(
      `${'['.repeat(d)}${']'.repeat(d)}`,
      `${'{"type":"ping","id":3,"x":'.repeat(Math.min(d, 2000))}1${'}'.repeat(Math.min(d, 2000))}`,
    ),
  );
const truncated = fc
  .tuple(objectMessage, fc.nat())
  .map(([text, cut]) => text.slice(0, cut % Math.max(1, text.length)));
const garbageText = fc.string({ maxLength: 300 });

export const badCase: fc.Arbitrary<Case> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('text' as const), text: objectMessage, conn }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('text' as const), text: nearOrder, conn }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('text' as const), text: truncated, conn }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('text' as const), text: garbageText, conn }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), text: huge, conn }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), text: deep, conn }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('binary' as const),
      bytes: fc.uint8Array({ maxLength: 3000 }),
      conn,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('binary' as const),
      bytes: fc
        .nat({ max: 200 })
        .map((cut) => encodeChunkFrame(crypto.randomUUID(), 3, new Uint8Array(100)).slice(0, cut)),
      conn,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('bad-utf8' as const),
      bytes: fc
        .uint8Array({ minLength: 1, maxLength: 50 })
        .map((b) => Uint8Array.from([0x7b, 0xff, 0xfe, ...b])),
      conn,
    }),
  },
);

class RawConn {
  ws!: WebSocket;
  private inbox: string[] = [];
  private waiter: (() => void) | undefined;
  closed = false;

  constructor(
    private readonly url: string,
    private readonly token?: string,
  ) {}

  async open(): Promise<void> {
    this.ws = new WebSocket(this.url);
    this.closed = false;
    this.inbox = [];
    this.ws.on('message', (d) => {
      this.inbox.push(d.toString());
      this.waiter?.();
    });
    this.ws.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    await new Promise((r, j) => {
      this.ws.once('open', r);
      this.ws.once('error', j);
    });
    await this.next(); // server.hello
    if (this.token) {
      this.ws.send(JSON.stringify({ type: 'auth.resume', id: 999_999, token: this.token }));
      await this.next();
    }
  }

  /** The next message, or 'closed'. */
  async next(timeoutMs = 5000): Promise<string | 'closed' | 'timeout'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.inbox.shift();
      if (m !== undefined) return m;
      if (this.closed) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiter = undefined;
    }
  }
}

export interface FuzzReport {
  cases: number;
  typedErrors: number;
  results: number;
  cleanCloses: number;
  crashes: number;
  corrupted: number;
  problems: string[];
}

export async function runBadInput(numRuns: number, seed?: number): Promise<FuzzReport> {
  const server = await testServer({
    messagesPerSecond: 1e6,
    messageBurst: 1e6,
    deliveryBytesPerSecond: 256 * 1024,
  });
  const { c, t } = await linkedPair(server);
  const db = (server.repo as unknown as { db: { prepare(s: string): { get(): unknown; all(): unknown[] } } })
    .db;
  const count = (table: string) =>
    (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  const catalogHash = () =>
    createHash('sha256')
      .update(JSON.stringify(db.prepare('SELECT * FROM catalog').all()))
      .digest('hex');
  const before = {
    customers: count('customers'),
    terminals: count('terminals'),
    orders: count('orders'),
    catalog: catalogHash(),
  };

  // The healthy terminal gets a rental while the fuzz runs.
  const order = await rentNow(c, t.core.terminalId, 103);

  const conns = { anon: new RawConn(server.wsUrl), customer: new RawConn(server.wsUrl, c.token) };
  await conns.anon.open();
  await conns.customer.open();
  const report: FuzzReport = {
    cases: 0,
    typedErrors: 0,
    results: 0,
    cleanCloses: 0,
    crashes: 0,
    corrupted: 0,
    problems: [],
  };
  let registered = 0;
  let ordered = 0;

  await fc.assert(
    fc.asyncProperty(badCase, async (k) => {
      const conn = conns[k.conn];
      if (conn.closed) await conn.open();
      report.cases++;
      if (k.kind === 'text') conn.ws.send(k.text);
      else conn.ws.send(k.bytes, { binary: k.kind === 'binary' });
      let reply = await conn.next();
      // Pushes (the healthy order's progress reaches this customer too) are not replies.
      while (reply !== 'closed' && reply !== 'timeout' && !/^\{"type":"(result|error)"/.test(reply)) {
        reply = await conn.next();
      }
      if (reply === 'closed') {
        report.cleanCloses++;
        return;
      }
      if (reply === 'timeout') {
        report.problems.push(`no reply to ${k.kind} ${k.kind === 'text' ? k.text.slice(0, 80) : ''}`);
        return;
      }
      const m = ServerMessage.safeParse(JSON.parse(reply));
      if (!m.success) {
        report.problems.push(`invalid reply ${reply.slice(0, 120)}`);
      } else if (m.data.type === 'error') {
        if (!ERROR_CODES.includes(m.data.code)) report.problems.push(`untyped error ${reply}`);
        if (m.data.code === 'INTERNAL')
          report.problems.push(`internal error for ${k.kind === 'text' ? k.text.slice(0, 120) : k.kind}`);
        report.typedErrors++;
      } else if (m.data.type === 'result') {
        report.results++;
        if (k.kind === 'text' && k.text.includes('"auth.register"')) registered++;
        if (k.kind === 'text' && k.text.includes('"order.place"')) ordered++;
      }
    }),
    { numRuns, seed, endOnFailure: true },
  );

  // Still serving: a fresh connection answers, and the healthy terminal got its whole rental.
  const probe = new RawConn(server.wsUrl);
  await probe.open();
  probe.ws.send('{"type":"ping","id":1}');
  const pong = await probe.next();
  if (typeof pong !== 'string' || !pong.includes('"result"')) report.crashes++;
  probe.ws.close();
  try {
    await t.log.waitFor('licence', (e) => e.orderId === order.orderId, 30_000);
    await t.log.waitFor('stored', (e) => e.orderId === order.orderId, 30_000);
    const clear = await collect(t.core, order.orderId);
    if (clear.length !== order.size) report.crashes++;
  } catch (err) {
    report.crashes++;
    report.problems.push(`healthy terminal: ${(err as Error).message}`);
  }

  const integrity = db.prepare('PRAGMA integrity_check').get() as { integrity_check: string };
  if (integrity.integrity_check !== 'ok') report.corrupted++;
  if (catalogHash() !== before.catalog) report.corrupted++;
  if (count('terminals') !== before.terminals) report.corrupted++;
  if (count('customers') !== before.customers + registered) report.corrupted++;
  if (count('orders') !== before.orders + 1 + ordered) report.corrupted++;
  conns.anon.ws.close();
  conns.customer.ws.close();
  return report;
}
