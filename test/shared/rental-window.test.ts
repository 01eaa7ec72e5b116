import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Clock, TrustedClock, windowState } from '../../shared/rental-window.ts';

class FakeClock implements Clock {
  constructor(
    public wall: number,
    public mono = 0,
  ) {}
  now() {
    return this.wall;
  }
  monotonic() {
    return this.mono;
  }
}

test('window: not yet, open at notBefore, expired at notAfter', () => {
  const w = { notBefore: 100, notAfter: 200 };
  assert.equal(windowState(w, 99), 'not-yet');
  assert.equal(windowState(w, 100), 'open');
  assert.equal(windowState(w, 199), 'open');
  assert.equal(windowState(w, 200), 'expired');
});

test('offline: a clock turned back past the high-water mark is refused', () => {
  const clock = new FakeClock(10_000_000);
  const t = new TrustedClock(clock, 0, 1000);
  assert.deepEqual(t.now(), { ok: true, now: 10_000_000 });
  clock.wall = 10_000_000 - 500; // within tolerance: time is held at the mark, not moved back
  assert.deepEqual(t.now(), { ok: true, now: 10_000_000 });
  clock.wall = 10_000_000 - 5000;
  const r = t.now();
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.behindMs, 5000);
});

test('online: server time plus monotonic time wins over a wrong wall clock', () => {
  const clock = new FakeClock(0, 50);
  const t = new TrustedClock(clock, 5_000_000, 1000);
  t.observeServerTime(6_000_000);
  clock.mono = 1050;
  assert.deepEqual(t.now(), { ok: true, now: 6_001_000 });
  // The server undoes a mark pushed into the future by a clock once set forward.
  const ahead = new TrustedClock(new FakeClock(0), 9_000_000_000, 1000);
  ahead.observeServerTime(6_000_000);
  assert.equal(ahead.highWater, 6_000_000);
});

test('online: a server-signed time ahead of the anchor (a licence just issued) moves time forward', () => {
  const clock = new FakeClock(0, 0);
  const t = new TrustedClock(clock, 0, 1000);
  t.observeServerTime(1_000_000);
  clock.mono = 10; // the anchor says 1,000,010
  t.highWater = Math.max(t.highWater, 1_000_050); // a licence issued at 1,000,050 arrives
  assert.deepEqual(t.now(), { ok: true, now: 1_000_050 });
  clock.mono = 100;
  assert.deepEqual(t.now(), { ok: true, now: 1_000_100 });
});
