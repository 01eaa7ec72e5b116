/**
 * A rental's expiry timer (TerminalCore.scheduleExpiry, private: reached through a cast). Timers and
 * clocks are mocked: an hour-long wait runs in no time.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { TerminalCore } from '../../player/core/terminal-core.ts';
import type { TerminalStorage } from '../../player/core/terminal-storage.ts';
import { TrustedClock } from '../../shared/rental-window.ts';

const HOUR = 3_600_000;

function core(t: TestContext) {
  let at = 1_800_000_000_000;
  const clock = { now: () => at, monotonic: () => at };
  t.mock.timers.enable({ apis: ['setTimeout'] });
  t.mock.method(performance, 'now', () => at);
  const c = new TerminalCore({
    serverUrl: 'ws://127.0.0.1:1/ws',
    storage: {} as TerminalStorage, // expire is replaced below: nothing reaches storage
    socketFactory: () => {
      throw new Error('no connection in this test');
    },
    kind: 'headless',
    name: 'Timer test',
    clock,
  });
  const inner = c as unknown as {
    trusted: TrustedClock;
    expiryTimers: Map<string, { timer: unknown }>;
    scheduleExpiry(orderId: string, notAfter: number): void;
    expire(orderId: string): Promise<void>;
  };
  inner.trusted = new TrustedClock(clock, 0);
  const expired: string[] = [];
  inner.expire = async (orderId) => {
    expired.push(orderId);
  };
  const pass = (ms: number) => {
    at += ms;
    t.mock.timers.tick(ms);
  };
  return { inner, expired, pass, now: () => at };
}

test('the same end asked again keeps its timer; a rental expires at its end through hourly re-checks', (t) => {
  const { inner, expired, pass, now } = core(t);
  const id = 'order-a';
  const end = now() + 90 * 60_000;
  inner.scheduleExpiry(id, end); // the offer
  const first = inner.expiryTimers.get(id)?.timer;
  inner.scheduleExpiry(id, end); // its licence, a moment later
  assert.equal(inner.expiryTimers.get(id)?.timer, first, 'the same end: the timer stands');
  pass(HOUR);
  assert.deepEqual(expired, [], 'an hour in: re-checked, not expired');
  assert.notEqual(inner.expiryTimers.get(id)?.timer, first, 'the re-check set a timer for the rest');
  pass(30 * 60_000 - 1);
  assert.deepEqual(expired, []);
  pass(1);
  assert.deepEqual(expired, [id]);
});

test('a re-check that finds under a second left still sets the last timer; a new end replaces the timer', (t) => {
  const { inner, expired, pass, now } = core(t);
  const id = 'order-b';
  inner.scheduleExpiry(id, now() + HOUR + 500);
  pass(HOUR);
  assert.deepEqual(expired, []);
  pass(500);
  assert.deepEqual(expired, [id], 'expired half a second after the re-check');

  const other = 'order-c';
  inner.scheduleExpiry(other, now() + 10_000);
  const before = inner.expiryTimers.get(other)?.timer;
  inner.scheduleExpiry(other, now() + 5_000); // a shorter licence
  assert.notEqual(inner.expiryTimers.get(other)?.timer, before);
  pass(5_000);
  assert.deepEqual(expired, [id, other], 'at the new end, not the old');
  pass(10_000);
  assert.deepEqual(expired, [id, other], 'and once');
});
