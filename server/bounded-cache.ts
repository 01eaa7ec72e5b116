/**
 * A map that holds at most `max` entries, dropping (about) the least recently used, and whose entries can
 * age out after `ttlMs` (for rows another process may change). Used by the SQLite store to answer
 * the reads a busy server repeats for every order without asking the database again.
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, { value: V; at: number; seq: number }>();
  /** Counts insertions and moves: an entry's `seq` says how recently it went to the end. */
  private seq = 0;

  constructor(
    private readonly max: number,
    private readonly ttlMs = Number.POSITIVE_INFINITY,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.now() - e.at >= this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    // Most recently used last, so the first entry is the one to drop. An entry already among the
    // last quarter to go to the end stays where it is: it is far from being dropped, and moving it
    // (a delete and an insert in a map of 20,000) for every read cost 3 % of a busy server.
    if (this.seq - e.seq >= Math.max(1, this.max >> 2)) {
      this.entries.delete(key);
      e.seq = ++this.seq;
      this.entries.set(key, e);
    }
    return e.value;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, at: this.now(), seq: ++this.seq });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as K);
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
