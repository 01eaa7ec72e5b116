/**
 * The headless terminal's WebSocket client: frames cut anywhere, everything a server must not send,
 * and a real `ws` server on loopback (handshake, both directions, ping, close, refusal, pause).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  pooledFreeBytes,
  recycleMessageBuffer,
  takeMessageBuffer,
} from '../../player/headless/message-pool.ts';
import {
  FrameParser,
  TerminalSocket,
  terminalSocket,
  WebSocketProtocolError,
} from '../../player/headless/terminal-socket.ts';
import { cleanup, defer, sleep, until } from '../harness.ts';

afterEach(cleanup);

/** One unmasked server frame. */
function frame(opcode: number, payload: Uint8Array | string, fin = true, first = 0): Buffer {
  const body = Buffer.from(payload);
  const n = body.length;
  const head =
    n < 126
      ? Buffer.from([(fin ? 0x80 : 0) | first | opcode, n])
      : n < 65536
        ? Buffer.from([(fin ? 0x80 : 0) | opcode, 126, n >> 8, n & 0xff])
        : Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 127, 0, 0, 0, 0]), u32(n)]);
  return Buffer.concat([head, body]);
}
function u32(n: number) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

type Seen = (string | { bin: string } | { ping: string } | { close: number; reason: string })[];
function parser(seen: Seen, max?: number) {
  return new FrameParser(
    {
      text: (s) => seen.push(s),
      binary: (b) => seen.push({ bin: Buffer.from(b).toString('hex') }),
      ping: (p) => seen.push({ ping: Buffer.from(p).toString() }),
      close: (code, reason) => seen.push({ close: code, reason }),
    },
    max,
  );
}

test('frames cut at any point parse to the same messages; a binary message is a copy, not a view of the input', () => {
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const stream = Buffer.concat([
    frame(1, 'hello'),
    frame(1, 'x'.repeat(300)), // 16-bit length
    frame(2, big), // 64-bit length
    frame(9, 'are you there'),
    frame(1, 'frag', false),
    frame(10, 'unasked pong'), // control frames may come between fragments
    frame(0, 'mented ', false),
    frame(0, 'text'),
    frame(2, Buffer.from([1, 2]), false),
    frame(0, Buffer.from([3])),
    frame(1, 'héllo wörld'),
    frame(2, Buffer.alloc(0)),
    frame(1, ''),
    frame(8, Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from('done')])),
    frame(1, 'after close: ignored'),
  ]);
  const expected: Seen = [
    'hello',
    'x'.repeat(300),
    { bin: big.toString('hex') },
    { ping: 'are you there' },
    'fragmented text',
    { bin: '010203' },
    'héllo wörld',
    { bin: '' },
    '',
    { close: 4000, reason: 'done' },
  ];
  for (const cut of [1, 2, 3, 7, 100, 4096, 65_536, stream.length]) {
    const seen: Seen = [];
    const p = parser(seen);
    // Fed through one reused buffer, overwritten after each call, as the socket does.
    const reused = Buffer.alloc(cut);
    for (let at = 0; at < stream.length; at += cut) {
      const n = stream.copy(reused, 0, at, at + cut);
      p.feed(reused.subarray(0, n));
      reused.fill(0xee);
    }
    assert.deepEqual(seen, expected, `pieces of ${cut} bytes`);
  }
});

test('everything a server must not send is a typed protocol error with the close code RFC 6455 gives', () => {
  const cases: [string, Buffer, number][] = [
    ['masked frame', Buffer.from([0x81, 0x81, 1, 2, 3, 4, 5]), 1002],
    ['reserved bit', Buffer.from([0xc1, 0]), 1002],
    ['unknown data opcode', Buffer.from([0x83, 0]), 1002],
    ['unknown control opcode', Buffer.from([0x8b, 0]), 1002],
    ['fragmented ping', Buffer.from([0x09, 0]), 1002],
    ['long control frame', frame(9, 'p'.repeat(126)), 1002],
    ['continuation with nothing to continue', frame(0, 'x'), 1002],
    ['new message inside a fragmented one', Buffer.concat([frame(1, 'a', false), frame(1, 'b')]), 1002],
    ['close frame of one byte', frame(8, Buffer.from([3])), 1002],
    ['message over the limit', frame(2, Buffer.alloc(1025)), 1009],
    [
      'fragments over the limit',
      Buffer.concat([frame(2, Buffer.alloc(600), false), frame(0, Buffer.alloc(600))]),
      1009,
    ],
    ['length over 4 GiB', Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]), 1009],
    ['text that is not UTF-8', frame(1, Buffer.from([0xc3, 0x28])), 1007],
  ];
  for (const [name, bytes, code] of cases) {
    const seen: Seen = [];
    assert.throws(
      () => parser(seen, 1024).feed(bytes),
      (e: unknown) => e instanceof WebSocketProtocolError && e.closeCode === code,
      name,
    );
    assert.deepEqual(seen, [], `${name}: nothing delivered`);
  }
});

test('pooled message buffers: handed back once, taken again, foreign and repeated returns ignored', () => {
  const a = takeMessageBuffer(65_600);
  const before = pooledFreeBytes();
  recycleMessageBuffer(a.subarray(23)); // any view of it will do
  assert.equal(pooledFreeBytes(), before + 69_632, 'rounded up to 4 KiB');
  recycleMessageBuffer(a);
  assert.equal(pooledFreeBytes(), before + 69_632, 'a second return does not count twice');
  recycleMessageBuffer(new Uint8Array(69_632));
  assert.equal(pooledFreeBytes(), before + 69_632, 'a buffer the pool did not make stays out');
  const b = takeMessageBuffer(65_590);
  assert.equal(b.buffer, a.buffer, 'the same size class gets the buffer back');
  assert.equal(b.length, 65_590);
  assert.equal(pooledFreeBytes(), before);
  const c = takeMessageBuffer(65_600);
  assert.notEqual(c.buffer, a.buffer, 'a buffer in use is not handed out twice');
});

async function wsServer(opts: { refuse?: boolean } = {}) {
  const http = createServer();
  const wss = new WebSocketServer({
    server: http,
    path: '/ws',
    verifyClient: (_info, done) => (opts.refuse ? done(false, 429, 'busy') : done(true)),
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  defer(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        http.close(() => r());
      }),
  );
  const connections: WebSocket[] = [];
  wss.on('connection', (ws) => connections.push(ws));
  return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ws`, connections };
}

function events(s: TerminalSocket) {
  const seen: { type: string; data?: unknown; code?: number; reason?: string }[] = [];
  for (const type of ['open', 'message', 'error', 'close'] as const)
    s.addEventListener(type, (ev) => seen.push({ type, ...ev }));
  return seen;
}

test('against a ws server: text both ways, a large binary message, ping answered, close codes both ways', async () => {
  const srv = await wsServer();
  const s = new TerminalSocket(srv.url);
  const seen = events(s);
  await until(() => srv.connections.length === 1 && s.readyState === 1);
  const peer = srv.connections[0] as WebSocket;
  const got: string[] = [];
  peer.on('message', (m, binary) => got.push(binary ? `bin:${(m as Buffer).toString('hex')}` : String(m)));
  const pongs: string[] = [];
  peer.on('pong', (p) => pongs.push(String(p)));

  const big = Buffer.alloc(300_000, 0x5a);
  peer.send('welcome');
  peer.send(big);
  peer.ping('beat');
  s.send('from the terminal');
  s.send(new Uint8Array([9, 8, 7]));
  await until(() => got.length === 2 && pongs.length === 1 && seen.length >= 3);
  assert.deepEqual(got, ['from the terminal', 'bin:090807']);
  assert.deepEqual(pongs, ['beat']);
  assert.equal(seen[0]?.type, 'open');
  assert.equal(seen[1]?.data, 'welcome');
  const bin = seen[2]?.data as Uint8Array;
  assert.ok(bin instanceof Uint8Array);
  assert.ok(Buffer.from(bin).equals(big));

  let serverSaw: number | undefined;
  peer.on('close', (code) => {
    serverSaw = code;
  });
  s.close(4001, 'leaving');
  await until(() => s.readyState === 3 && serverSaw !== undefined);
  assert.equal(serverSaw, 4001);
  assert.equal(seen.at(-1)?.type, 'close');
  assert.ok(!seen.some((e) => e.type === 'error'));

  // And the other way: the server closes, the terminal sees its code and reason.
  const t = new TerminalSocket(srv.url);
  const tSeen = events(t);
  await until(() => srv.connections.length === 2 && t.readyState === 1);
  srv.connections[1]?.close(4002, 'server going away');
  await until(() => t.readyState === 3);
  assert.deepEqual(tSeen.at(-1), { type: 'close', code: 4002, reason: 'server going away' });
});

test('a refused handshake and a server that breaks the protocol: error, then close; the terminal process goes on', async () => {
  const refused = await wsServer({ refuse: true });
  const s = new TerminalSocket(refused.url);
  const seen = events(s);
  await until(() => s.readyState === 3);
  assert.deepEqual(
    seen.map((e) => e.type),
    ['error', 'close'],
  );
  assert.match(String((seen[0] as { error?: unknown }).error), /429/);

  const srv = await wsServer();
  const t = new TerminalSocket(srv.url);
  const tSeen = events(t);
  await until(() => srv.connections.length === 1 && t.readyState === 1);
  const peer = srv.connections[0] as WebSocket;
  let serverSaw: number | undefined;
  peer.on('close', (code) => {
    serverSaw = code;
  });
  // A frame with an unknown opcode, written under ws's framing.
  (peer as unknown as { _socket: { write(b: Buffer): void } })._socket.write(Buffer.from([0x83, 0]));
  await until(() => t.readyState === 3 && serverSaw !== undefined);
  assert.deepEqual(
    tSeen.map((e) => e.type),
    ['open', 'error', 'close'],
  );
  assert.equal(serverSaw, 1002, 'the server is told why');

  assert.throws(() => new TerminalSocket('http://127.0.0.1:1/ws'), /not a ws:\/\/ address/);
  const tls = terminalSocket('wss://127.0.0.1:1/ws');
  tls.addEventListener('error', () => {}); // nothing listens on port 1
  assert.ok(!(tls instanceof TerminalSocket), 'TLS goes through ws');
});

test('pause stops reading (TCP holds the server back); resume reads everything that waited, in order', async () => {
  const srv = await wsServer();
  const s = new TerminalSocket(srv.url);
  const got: number[] = [];
  s.addEventListener('message', (ev) => {
    const b = ev.data as Uint8Array;
    got.push(b[0] as number);
    s.recycle(b);
  });
  await until(() => srv.connections.length === 1 && s.readyState === 1);
  s.pause();
  const peer = srv.connections[0] as WebSocket;
  for (let i = 0; i < 64; i++) peer.send(Buffer.alloc(64 * 1024, i));
  await sleep(200);
  assert.equal(got.length, 0, 'nothing read while paused');
  s.resume();
  await until(() => got.length === 64, 5000);
  assert.deepEqual(
    got,
    Array.from({ length: 64 }, (_, i) => i),
  );
  s.close();
});

test('frames sent in one turn leave in one write, in order; a frame sent later is not held back', async () => {
  const srv = await wsServer();
  const s = new TerminalSocket(srv.url);
  await until(() => srv.connections.length === 1 && s.readyState === 1);
  const peer = srv.connections[0] as WebSocket;
  const got: string[] = [];
  peer.on('message', (m) => got.push(String(m)));
  // The writes the terminal's socket hands to the system: Node calls _writev once for what was
  // corked, _write for a frame on its own. A licence's acknowledgement and a title's report sent
  // together should be one system call here and one wake-up of the server.
  type Writes = { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  const socket = (s as unknown as { socket: Writes }).socket;
  const writes: number[] = [];
  for (const name of ['_write', '_writev'] as const) {
    const original = socket[name].bind(socket);
    socket[name] = (...a: unknown[]) => {
      writes.push(name === '_writev' ? (a[0] as unknown[]).length : 1);
      original(...a);
    };
  }
  s.send('licence.ack');
  s.send('delivery.progress');
  s.send('ad.impression');
  await until(() => got.length === 3);
  assert.deepEqual(got, ['licence.ack', 'delivery.progress', 'ad.impression']);
  assert.deepEqual(writes, [3], 'one write of the three frames');
  await sleep(20);
  s.send('later');
  await until(() => got.length === 4);
  assert.equal(got[3], 'later');
  assert.deepEqual(writes, [3, 1]);
  s.close();
  await until(() => s.readyState === 3);
});
