import assert from 'node:assert/strict';
import { test } from 'node:test';
import { orderStatus } from '../../server/key/orders.ts';
import type { OrderRow } from '../../server/store/repository.ts';
import { RentalError } from '../../shared/errors.ts';
import { orderTimes } from '../../shared/order-times.ts';

const NOW = 1_800_000_000_000;

test('deliver now: content and key now, the window starts now', () => {
  assert.deepEqual(orderTimes({ periodSeconds: 60, schedule: { mode: 'now' } }, NOW, 10), {
    contentAt: NOW,
    keyAt: NOW,
    notBefore: NOW,
    notAfter: NOW + 60_000,
  });
});

test('delivery start: pre-load later, key released with it', () => {
  const at = NOW + 3_600_000;
  assert.deepEqual(orderTimes({ periodSeconds: 60, schedule: { mode: 'delivery-start', at } }, NOW, 10), {
    contentAt: at,
    keyAt: at,
    notBefore: at,
    notAfter: at + 60_000,
  });
});

test('key delivery: content now, key and window at the premiere', () => {
  const at = NOW + 3_600_000;
  const t = orderTimes({ periodSeconds: 60, schedule: { mode: 'key-delivery', at } }, NOW, 10);
  assert.equal(t.contentAt, NOW);
  assert.equal(t.keyAt, at);
  assert.equal(t.notBefore, at);
});

test('periods and schedules out of bounds are typed errors', () => {
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as RentalError).code;
    }
    return 'no error';
  };
  assert.equal(
    code(() => orderTimes({ periodSeconds: 5, schedule: { mode: 'now' } }, NOW, 10)),
    'BAD_PERIOD',
  );
  assert.equal(
    code(() => orderTimes({ periodSeconds: 31 * 86400, schedule: { mode: 'now' } }, NOW, 10)),
    'BAD_PERIOD',
  );
  assert.equal(
    code(() =>
      orderTimes({ periodSeconds: 60, schedule: { mode: 'key-delivery', at: NOW - 3_600_000 } }, NOW, 10),
    ),
    'BAD_SCHEDULE',
  );
  assert.equal(
    code(() =>
      orderTimes(
        { periodSeconds: 60, schedule: { mode: 'delivery-start', at: NOW + 365 * 86_400_000 } },
        NOW,
        10,
      ),
    ),
    'BAD_SCHEDULE',
  );
  // A few seconds late (slow typing) means now.
  assert.equal(
    orderTimes({ periodSeconds: 60, schedule: { mode: 'key-delivery', at: NOW - 5000 } }, NOW, 10).keyAt,
    NOW,
  );
  assert.ok(RentalError);
});

test('status follows content and key state, and time', () => {
  const o = {
    notBefore: NOW,
    notAfter: NOW + 1000,
    contentState: 'scheduled',
    keyState: 'scheduled',
  } as OrderRow;
  assert.equal(orderStatus(o, NOW - 10), 'scheduled');
  assert.equal(orderStatus({ ...o, contentState: 'delivering' }, NOW), 'delivering');
  assert.equal(orderStatus({ ...o, contentState: 'delivered' }, NOW), 'waiting-key');
  assert.equal(orderStatus({ ...o, contentState: 'delivered', keyState: 'delivered' }, NOW), 'window-open');
  assert.equal(
    orderStatus({ ...o, contentState: 'delivered', keyState: 'delivered' }, NOW + 1000),
    'expired',
  );
});
