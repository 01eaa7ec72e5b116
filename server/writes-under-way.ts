/**
 * Writes a server starts in the background (a terminal gone offline, a delivery's last report) and
 * lets land before it closes its store when it stops: not awaited by whoever started them, but not
 * forgotten either. On PostgreSQL they were cut off by the pool's end.
 */
export class WritesUnderWay {
  private readonly pending = new Set<Promise<void>>();

  /** Track `write`; a failure goes to `onError` (a log line), never to the caller. */
  add(write: Promise<unknown>, onError: (err: unknown) => void): void {
    const w = write.then(
      () => undefined,
      (err) => onError(err),
    );
    this.pending.add(w);
    void w.finally(() => this.pending.delete(w));
  }

  /** Resolves once none is under way, those started meanwhile included. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled(this.pending);
  }
}
