import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newOrderId } from '../../server/key/order-id.ts';
import { decodeChunkFrame, encodeChunkFrame, OrderId } from '../../shared/protocol.ts';

test('order ids are UUID version 7: the wire schema and the chunk frame take them', () => {
  const id = newOrderId(1_800_000_000_000);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(OrderId.safeParse(id).success, true);
  assert.equal(decodeChunkFrame(encodeChunkFrame(id, 3, new Uint8Array(1)))?.orderId, id);
});

test('order ids start with their creation time, so later orders sort after earlier ones', () => {
  const t = 1_800_000_000_000;
  assert.equal(newOrderId(t).replace(/-/g, '').slice(0, 12), t.toString(16).padStart(12, '0'));
  const ids = [t, t + 1, t + 2, t + 1000, t + 86_400_000].map((ms) => newOrderId(ms));
  assert.deepEqual([...ids].sort(), ids);
});

test('order ids made in one millisecond differ (74 random bits)', () => {
  const ids = new Set(Array.from({ length: 20_000 }, () => newOrderId(1_800_000_000_000)));
  assert.equal(ids.size, 20_000);
});
