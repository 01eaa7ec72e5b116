/**
 * Work a server starts in the background (a terminal gone offline, a delivery's last report, the
 * jobs of an order as it is placed) and lets finish before it closes its store when it stops: not
 * awaited by whoever started it, but not forgotten either. On PostgreSQL such writes were cut off
 * by the pool's end.
 */
export class BackgroundWork {
  private readonly pending = new Set<Promise<void>>();

  /** Track `work`; a failure goes to `onError` (a log line), never to the caller. */
  add(work: Promise<unknown>, onError: (err: unknown) => void): void {
    const w = work.then(
      () => undefined,
      (err) => onError(err),
    );
    this.pending.add(w);
    void w.finally(() => this.pending.delete(w));
  }

  /** Resolves once none is under way, what started meanwhile included. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled(this.pending);
  }
}
