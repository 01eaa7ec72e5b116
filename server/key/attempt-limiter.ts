/** Counts failures per key (an e-mail, an account) in a sliding window and refuses past a limit. */
import { RentalError } from '../../shared/errors.ts';

export class AttemptLimiter {
  private readonly failures = new Map<string, number[]>();

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
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }

  private recent(key: string): number[] {
    const since = Date.now() - this.windowMs;
    const list = (this.failures.get(key) ?? []).filter((t) => t > since);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }
}
