/**
 * A server closing while work is still timed to come (an order's update waiting out its cooldown)
 * runs none of it against its closed store: a graceful stop logs no failure.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { ORDER_PUSH_COOLDOWN_MS } from '../server/key/orders.ts';
import { flushLogs } from '../server/log.ts';
import { cleanup, linkedPair, rentNow, sleep, testServer } from './harness.ts';

afterEach(cleanup);

test('an order update due after the server closed is dropped, not run against the closed store', async () => {
  const server = await testServer();
  const { c, t } = await linkedPair(server);
  const order = await rentNow(c, t.core.terminalId, 101, 600);
  // The order changed (delivered, key delivered) within the cooldown its answer started: one more
  // update is due when that ends. Closed before then, the server must not send it.
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  flushLogs();
  let logged = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    logged += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await server.close();
    await sleep(2 * ORDER_PUSH_COOLDOWN_MS);
    flushLogs();
  } finally {
    process.stderr.write = write;
  }
  assert.doesNotMatch(logged, /order-push-failed|not open|pool after calling end/);
  assert.doesNotMatch(logged, /"level":"(warn|error)"/, logged);
});
