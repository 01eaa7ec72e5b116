/**
 * Who may do what: terminals only touch their own deliveries and licences; orders per minute and
 * connections per address are bounded.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { WebSocket } from 'ws';
import { LIMITS } from '../shared/limits.ts';
import { cleanup, linkedPair, rawTerminal, testServer } from './harness.ts';

afterEach(cleanup);

test("a terminal cannot accept, report on or acknowledge another terminal's delivery or licence", async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  const { order } = await c.request('order.place', {
    itemNumber: 101,
    terminalId: t.core.terminalId,
    periodSeconds: 60,
    schedule: { mode: 'key-delivery', at: Date.now() + 60_000 },
  });
  const intruder = await rawTerminal(server.wsUrl);
  const tries = [
    { type: 'delivery.accept', id: 10, orderId: order.orderId, from: 0 },
    { type: 'delivery.progress', id: 11, orderId: order.orderId, have: 1 },
    { type: 'licence.ack', id: 12, orderId: order.orderId },
  ];
  for (const m of tries) {
    intruder.ws.send(JSON.stringify(m));
    const reply = await intruder.next((r) => r.re === m.id);
    assert.equal(reply.code, 'NOT_FOUND', m.type);
  }
  // The intruder's acknowledgement changed nothing: the key is still waiting for its time.
  const row = await server.repo.orderById(order.orderId);
  assert.equal(row?.keyState === 'delivered', false);
  assert.equal(await server.repo.licenceOf(order.orderId), undefined);
  // And a second terminal.auth on the same connection is refused.
  intruder.ws.send(
    JSON.stringify({
      type: 'terminal.auth',
      id: 13,
      signPublicKey: 'AAAA',
      signature: 'AAAA',
      kind: 'headless',
      name: 'x',
    }),
  );
  assert.equal((await intruder.next((r) => r.re === 13)).code, 'WRONG_ROLE');
  intruder.ws.close();
});

test(`orders are limited to ${LIMITS.ordersPerMinute} per customer per minute`, async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  const codes: string[] = [];
  for (let i = 0; i < LIMITS.ordersPerMinute + 2; i++) {
    await c
      .request('order.place', {
        itemNumber: 101,
        terminalId: t.core.terminalId,
        periodSeconds: 60,
        schedule: { mode: 'delivery-start', at: Date.now() + 3_600_000 },
      })
      .then(() => codes.push('ok'))
      .catch((e: { code: string }) => codes.push(e.code));
  }
  assert.equal(codes.filter((x) => x === 'ok').length, LIMITS.ordersPerMinute);
  assert.deepEqual(codes.slice(-2), ['RATE_LIMITED', 'RATE_LIMITED']);
});

test('connections from one address are bounded', async () => {
  const server = await testServer({ connectionsPerIp: 5 });
  const sockets = Array.from({ length: 6 }, () => new WebSocket(server.wsUrl));
  const outcomes = await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<string>((resolve) => {
          ws.once('message', () => resolve('served'));
          ws.once('close', (code) => resolve(`closed ${code}`));
        }),
    ),
  );
  assert.equal(outcomes.filter((o) => o === 'served').length, 5);
  assert.deepEqual(
    outcomes.filter((o) => o !== 'served'),
    ['closed 1013'],
  );
  for (const ws of sockets) ws.close();
});
