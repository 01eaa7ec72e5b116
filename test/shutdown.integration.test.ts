/**
 * A server stopping gracefully lets its connections' last records land (terminals gone offline)
 * and runs nothing timed to come later (an order's update waiting out its cooldown) against its
 * closed store: the stop logs no failure. On PostgreSQL (`npm run test:pg`) the offline records
 * were cut off ("Cannot use a pool after calling end on the pool").
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { ORDER_PUSH_COOLDOWN_MS } from '../server/key/orders.ts';
import { cleanup, linkedPair, rentNow, sleep, terminal, testServer } from './harness.ts';
import { capturedStderr } from './stderr-capture.ts';

afterEach(cleanup);

test('a graceful stop: offline records land, an order update due after it is dropped, nothing fails', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  // Terminals connected as it stops: each goes offline, a presence write the store must still take.
  for (let i = 0; i < 8; i++) await terminal(server);
  const order = await rentNow(c, t.core.terminalId, 101, 600);
  // The order changed (delivered, key delivered) within the cooldown its answer started: one more
  // update is due when that ends. Closed before then, the server must not send it.
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  // The server has recorded both (no delivery is still under way to be cut off by the stop).
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(5)) {
    const o = await server.repo.orderById(order.orderId);
    if (o?.contentState === 'delivered' && o.keyState === 'delivered') break;
  }
  const { text: logged } = await capturedStderr(async () => {
    await server.close();
    await sleep(2 * ORDER_PUSH_COOLDOWN_MS);
  });
  assert.doesNotMatch(logged, /order-push-failed|not open|pool after calling end/);
  assert.doesNotMatch(logged, /"level":"(warn|error)"/, logged);
});
