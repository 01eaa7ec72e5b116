/** Counts failures per key (an e-mail, an account) in a sliding window and refuses past a limit. */
import { RentalError } from '../../shared/errors.ts';

/** Keys held before the first sweep of those whose failures have all left the window. */
const FIRST_SWEEP = 1024;

export class AttemptLimiter {
  private readonly failures = new Map<string, number[]>();
  /**
   * A key is otherwise dropped only when it is checked again or succeeds: failed sign-ins with ever
   * new e-mails would grow the map for as long as the server runs. Sweeping whenever it has doubled
   * since the last sweep costs each failure O(1) on average, and keeps at most about twice the keys
   * that failed within the window.
   */
  private sweepAt = FIRST_SWEEP;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly refusal: string,
  ) {}

  /** Throws RATE_LIMITED when `key` has failed too often lately. */
  check(key: string): void {
    if (this.recent(key).length >= this.limit) throw new RentalError('RATE_LIMITED', this.refusal);
  }

  fail(key: string): void {
    this.failures.set(key, [...this.recent(key), Date.now()]);
    if (this.failures.size >= this.sweepAt) this.sweep();
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }

  /** Keys with a failure still in the window, and any not swept yet (for tests). */
  get keysHeld(): number {
    return this.failures.size;
  }

  private recent(key: string): number[] {
    const since = Date.now() - this.windowMs;
    const list = (this.failures.get(key) ?? []).filter((t) => t > since);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  private sweep(): void {
    const since = Date.now() - this.windowMs;
    // Times are appended in order: the last is the newest.
    for (const [key, times] of this.failures) if ((times.at(-1) ?? 0) <= since) this.failures.delete(key);
    this.sweepAt = Math.max(FIRST_SWEEP, 2 * this.failures.size);
  }
}
