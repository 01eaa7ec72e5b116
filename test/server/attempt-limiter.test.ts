import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AttemptLimiter } from '../../server/key/attempt-limiter.ts';
import { RentalError } from '../../shared/errors.ts';

test('failures with ever new keys do not pile up: keys whose failures left the window are swept', (t) => {
  // The clock is the test's: no failure leaves the window while the test is slow, nor stays in it.
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const limiter = new AttemptLimiter(3, 100, 'too many');
  for (let i = 0; i < 5000; i++) limiter.fail(`old${i}@example.com`);
  assert.equal(limiter.keysHeld, 5000, 'all within the window: all kept');
  t.mock.timers.tick(150);
  // A key that fails now and then goes on being refused, sweeps or not.
  for (let i = 0; i < 3; i++) limiter.fail('target@example.com');
  for (let i = 0; i < 5000; i++) limiter.fail(`new${i}@example.com`);
  // Without the sweep: 10,001. The 5,000 old ones left the window and went with a sweep.
  assert.ok(limiter.keysHeld <= 5001, `held ${limiter.keysHeld}`);
  assert.throws(
    () => limiter.check('target@example.com'),
    (e: unknown) => e instanceof RentalError && e.code === 'RATE_LIMITED',
  );
  limiter.check('old1@example.com'); // its failures are over: not refused
});
