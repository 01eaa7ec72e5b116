/**
 * Work a server starts in the background (a terminal gone offline, a delivery's last report, the
 * jobs of an order as it is placed) and lets finish before it closes its store when it stops: not
 * awaited by whoever started it, but not forgotten either. On PostgreSQL such writes were cut off
 * by the pool's end.
 */
export class BackgroundWork {
  /**
   * Counted, not kept in a Set: work comes and goes many times a second, and a long-lived Set of it
   * had everything ever added promoted to V8's old generation (see shared/churn-map.ts).
   */
  private running = 0;
  private idle: (() => void)[] = [];

  /** Track `work`; a failure goes to `onError` (a log line), never to the caller. */
  add(work: Promise<unknown>, onError: (err: unknown) => void): void {
    this.running++;
    void work
      .then(
        () => undefined,
        (err) => onError(err),
      )
      .finally(() => {
        if (--this.running > 0) return;
        for (const wake of this.idle.splice(0)) wake();
      });
  }

  /** Resolves once none is under way, what started meanwhile included. */
  async settled(): Promise<void> {
    while (this.running > 0) await new Promise<void>((wake) => this.idle.push(wake));
  }
}
