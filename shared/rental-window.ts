/**
 * Rental-window rules, with an injectable clock so they are tested without waiting.
 *
 * A terminal never trusts its wall clock alone. It keeps a high-water mark of time it has seen
 * signed by the server (and advances it with its own clock while running). If the wall clock is
 * ever behind that mark by more than the tolerance, the clock was turned back and playback is refused.
 * While connected it also derives time from the last signed server time plus a monotonic clock,
 * so a clock turned back during a session changes nothing.
 */
import { LIMITS } from './limits.ts';

export interface Clock {
  /** Wall-clock milliseconds since the epoch. */
  now(): number;
  /** Monotonic milliseconds (never goes back). */
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

export interface Window {
  notBefore: number;
  notAfter: number;
}

export type WindowState = 'not-yet' | 'open' | 'expired';

export function windowState(w: Window, now: number): WindowState {
  if (now < w.notBefore) return 'not-yet';
  if (now >= w.notAfter) return 'expired';
  return 'open';
}

export type TrustedNow =
  | { ok: true; now: number }
  | { ok: false; reason: 'clock-turned-back'; behindMs: number };

export class TrustedClock {
  private anchor: { server: number; mono: number } | undefined;

  constructor(
    private readonly clock: Clock,
    /** Highest time known to be real (server-signed, or observed while trusted). Persist it. */
    public highWater: number,
    private readonly toleranceMs: number = LIMITS.clockSkewToleranceMs,
  ) {}

  /** Record a server-signed time (already verified by the caller). */
  observeServerTime(serverTime: number): void {
    this.anchor = { server: serverTime, mono: this.clock.monotonic() };
    // The server is authoritative: this also undoes a mark pushed ahead by a clock set forward.
    this.highWater = serverTime;
  }

  /** Best estimate of real time, or a refusal when the device clock was turned back. */
  now(): TrustedNow {
    const wall = this.clock.now();
    const anchored = this.anchor
      ? this.anchor.server + (this.clock.monotonic() - this.anchor.mono)
      : undefined;
    if (anchored === undefined && wall < this.highWater - this.toleranceMs) {
      return { ok: false, reason: 'clock-turned-back', behindMs: this.highWater - wall };
    }
    // Online: server time plus monotonic time, whatever the wall clock says. Offline: the wall
    // clock, never earlier than what we already know (a clock set forward only shortens the rental).
    // The mark only ever holds server-signed times (a licence's issue time, say), so it is a floor
    // for the anchored time too: the anchor lags the server by the message's travel time.
    const now = anchored !== undefined ? Math.max(anchored, this.highWater) : Math.max(wall, this.highWater);
    this.highWater = now;
    return { ok: true, now };
  }
}
