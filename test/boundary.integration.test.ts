/**
 * Bad input at the WebSocket boundary: every malformed, oversized, unknown or out-of-role message
 * gets a typed error (or, for oversized frames, a clean close), and the server keeps serving a
 * healthy terminal in the meantime.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { WebSocket } from 'ws';
import { cleanup, linkedPair, testServer } from './harness.ts';

afterEach(cleanup);

type Reply = { type: string; re?: number | null; code?: string; issues?: string[] };

async function rawClient(url: string) {
  const ws = new WebSocket(url);
  const inbox: Reply[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (d) => {
    inbox.push(JSON.parse(d.toString()));
    for (const w of waiters.splice(0)) w();
  });
  await new Promise((r) => ws.once('open', r));
  const next = async (pred: (m: Reply) => boolean = () => true): Promise<Reply> => {
    for (;;) {
      const i = inbox.findIndex(pred);
      if (i >= 0) return inbox.splice(i, 1)[0] as Reply;
      await new Promise<void>((r, j) => {
        const t = setTimeout(() => j(new Error('no reply')), 5000);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  await next((m) => m.type === 'server.hello');
  return { ws, next, inbox };
}

test('malformed, unknown, unauthenticated and out-of-role messages get typed errors', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  const raw = await rawClient(server.wsUrl);
  const errorFor = async (payload: string | Buffer, re: number | null = null) => {
    raw.ws.send(payload);
    return raw.next((m) => m.type === 'error' && (m.re ?? null) === re);
  };
  assert.equal((await errorFor('this is not json')).code, 'BAD_JSON');
  assert.equal((await errorFor(Buffer.from([1, 2, 3]))).code, 'BAD_JSON');
  assert.equal((await errorFor('{"type":"nope","id":1}', 1)).code, 'UNKNOWN_TYPE');
  const missing = await errorFor('{"type":"order.place","id":2}', 2);
  assert.equal(missing.code, 'BAD_MESSAGE');
  assert.ok(
    missing.issues?.some((i) => i.startsWith('itemNumber')),
    JSON.stringify(missing.issues),
  );
  const extra = await errorFor(
    JSON.stringify({ type: 'auth.login', id: 3, email: 'a@b.co', password: '12345678', admin: true }),
    3,
  );
  assert.equal(extra.code, 'BAD_MESSAGE');
  const wrongType = await errorFor(JSON.stringify({ type: 'catalog.list', id: '4' }));
  assert.equal(wrongType.code, 'BAD_MESSAGE');
  const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
  assert.ok(['BAD_JSON', 'UNKNOWN_TYPE'].includes((await errorFor(deep)).code as string));
  const huge = await errorFor(
    JSON.stringify({
      type: 'auth.login',
      id: 5,
      email: `${'a'.repeat(60_000)}@b.co`,
      password: 'x'.repeat(8),
    }),
    5,
  );
  assert.equal(huge.code, 'BAD_MESSAGE');
  const order = {
    type: 'order.place',
    id: 6,
    itemNumber: 101,
    terminalId: t.core.terminalId,
    periodSeconds: 60,
    schedule: { mode: 'now' },
  };
  assert.equal((await errorFor(JSON.stringify(order), 6)).code, 'NOT_AUTHENTICATED');
  assert.equal(
    (await errorFor('{"type":"licence.ack","id":7,"orderId":"00000000-0000-4000-8000-000000000000"}', 7))
      .code,
    'NOT_AUTHENTICATED',
  );

  // A terminal connection may not act as a customer.
  const asTerminal = await errorFor(
    JSON.stringify({
      type: 'terminal.auth',
      id: 8,
      signPublicKey: 'AAAA',
      signature: 'AAAA',
      kind: 'headless',
      name: 'x',
    }),
    8,
  );
  assert.equal(asTerminal.code, 'BAD_SIGNATURE');

  // The same connection still works.
  raw.ws.send('{"type":"ping","id":9}');
  assert.equal((await raw.next((m) => m.re === 9)).type, 'result');

  // And nothing reached the database.
  assert.equal((await server.repo.ordersOfCustomer(c.customerId)).length, 0);

  // Meanwhile a healthy terminal still gets a full rental.
  const { order: placed } = await c.request('order.place', {
    itemNumber: 101,
    terminalId: t.core.terminalId,
    periodSeconds: 60,
    schedule: { mode: 'now' },
  });
  await t.log.waitFor('licence', (e) => e.orderId === placed.orderId);
  await t.log.waitFor('stored', (e) => e.orderId === placed.orderId);
});

test('an oversized message closes that connection cleanly and nothing else', async () => {
  const server = await testServer();
  const raw = await rawClient(server.wsUrl);
  const closed = new Promise<number>((r) => raw.ws.once('close', (code) => r(code)));
  raw.ws.send('x'.repeat(200_000));
  assert.equal(await closed, 1009);
  const again = await rawClient(server.wsUrl);
  again.ws.send('{"type":"ping","id":1}');
  assert.equal((await again.next((m) => m.re === 1)).type, 'result');
  again.ws.close();
});

test('a flood of messages is rate limited without dropping the connection', async () => {
  const server = await testServer();
  const raw = await rawClient(server.wsUrl);
  for (let i = 0; i < 400; i++) raw.ws.send(`{"type":"ping","id":${i}}`);
  await raw.next((m) => m.code === 'RATE_LIMITED');
  await new Promise((r) => setTimeout(r, 1200));
  raw.ws.send('{"type":"ping","id":100000}');
  assert.equal((await raw.next((m) => m.re === 100000)).type, 'result');
  raw.ws.close();
});

test('a customer connection cannot send terminal messages, and login failures are rate limited', async () => {
  const server = await testServer();
  const { c } = await linkedPair(server);
  await assert.rejects(
    // @ts-expect-error: deliberately sending a terminal message through the customer client
    c.request('licence.ack', { orderId: '00000000-0000-4000-8000-000000000000' }),
    (e: { code: string }) => e.code === 'WRONG_ROLE',
  );
  const codes: string[] = [];
  for (let i = 0; i < 7; i++) {
    await c
      .request('auth.login', { email: c.email, password: 'wrong password!' })
      .catch((e) => codes.push(e.code));
  }
  assert.deepEqual(codes.slice(0, 5), Array(5).fill('BAD_CREDENTIALS'));
  assert.equal(codes[5], 'RATE_LIMITED');
  // Even the right password is refused while the limit holds.
  await assert.rejects(
    c.request('auth.login', { email: c.email, password: 'correct horse battery' }),
    (e: { code: string }) => e.code === 'RATE_LIMITED',
  );
});

test('sessions resume with a token and stop working once revoked', async () => {
  const server = await testServer();
  const { c } = await linkedPair(server);
  const { RentalClient } = await import('../shared/rental-client.ts');
  const { socket } = await import('./harness.ts');
  const other = new RentalClient(server.wsUrl, socket);
  await other.connect();
  const resumed = await other.request('auth.resume', { token: c.token });
  assert.equal(resumed.customer.customerId, c.customerId);
  assert.equal((await other.request('terminal.list', {})).terminals.length, 1);
  await c.request('auth.logout', {});
  // Every connection on that token is signed out, not only the one that asked.
  await assert.rejects(
    other.request('terminal.list', {}),
    (e: { code: string }) => e.code === 'NOT_AUTHENTICATED',
  );
  const third = new RentalClient(server.wsUrl, socket);
  await third.connect();
  await assert.rejects(
    third.request('auth.resume', { token: c.token }),
    (e: { code: string }) => e.code === 'SESSION_EXPIRED',
  );
  other.close();
  third.close();
});

test('pairing codes expire, are refused after expiry, and the terminal fetches a fresh one by itself', async () => {
  const { customer, terminal } = await import('./harness.ts');
  const server = await testServer({ pairingCodeTtlMs: 1200 });
  const t = await terminal(server);
  const first = t.core.pairingCode as string;
  const c = await customer(server);
  await new Promise((r) => setTimeout(r, 1400));
  await assert.rejects(
    c.request('terminal.link', { code: first, name: 'TV' }),
    (e: { code: string }) => e.code === 'PAIRING_CODE_INVALID',
  );
  await t.log.waitFor('welcome', (e) => e.pairingCode !== first);
  const fresh = t.core.pairingCode as string;
  assert.notEqual(fresh, first);
  const { terminal: view } = await c.request('terminal.link', {
    code: fresh.toLowerCase().replace('-', ''),
    name: 'TV',
  });
  assert.equal(view.terminalId, t.core.terminalId);
  await t.log.waitFor('linked', (e) => e.linked);
});

test('an account links at most five terminals, with a clear error for the sixth', async () => {
  const { customer, terminal } = await import('./harness.ts');
  const server = await testServer();
  const c = await customer(server);
  for (let i = 0; i < 5; i++) {
    const t = await terminal(server);
    await c.request('terminal.link', { code: t.core.pairingCode as string, name: `Box ${i}` });
  }
  const sixth = await terminal(server);
  await assert.rejects(
    c.request('terminal.link', { code: sixth.core.pairingCode as string, name: 'Box 6' }),
    (e: { code: string; message: string }) => e.code === 'TERMINAL_LIMIT' && /at most 5/.test(e.message),
  );
  assert.equal((await c.request('terminal.list', {})).terminals.length, 5);
});
