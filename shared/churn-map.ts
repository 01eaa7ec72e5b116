/**
 * A map for entries that come and go within milliseconds, many a second: licences awaiting the
 * signing thread, an order's update cooldown, a delivery under way, a terminal's file operations.
 *
 * A `Map` that lives long links each hash table it outgrows to the next one. Once one of those
 * tables has reached V8's old generation, the young collections keep the chain behind it alive
 * until the next full collection: everything put into the map since (and all it referenced) was
 * promoted, although taken out long before (docs/benchmarks-history.md, the twenty-first session).
 * So this one is a `Map` that is replaced by a copy of itself when it has lived SWAP_MS and more
 * comes in: it and its tables stay young, and the copy holds only what is still in it. A copy costs
 * as much as the entries held (20,000: 8 ms), so it waits until as many sets have come as it
 * held at the last one: O(1) a set on average, however many entries stay for long (orders licensed
 * tomorrow, a terminal's rentals), while a map that churns is copied every SWAP_MS as before. (A plain
 * object as a dictionary, the first way round it, cost 3-4 times a Map's time per key: every fresh
 * string key is internalised; the twenty-second session.)
 */
const SWAP_MS = 50;

export class ChurnMap<K extends string | number, V> {
  private map = new Map<K, V>();
  private bornAt = Date.now();
  private setsSinceCopy = 0;
  private sizeAtCopy = 0;

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): void {
    if (++this.setsSinceCopy >= this.sizeAtCopy) {
      const now = Date.now();
      if (now - this.bornAt >= SWAP_MS) {
        this.map = new Map(this.map);
        this.bornAt = now;
        this.setsSinceCopy = 0;
        this.sizeAtCopy = this.map.size;
      }
    }
    this.map.set(key, value);
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  /** The values, in the order their keys were first set. */
  values(): V[] {
    return [...this.map.values()];
  }

  /** The keys, in the order of `values`. */
  keys(): K[] {
    return [...this.map.keys()];
  }

  /** Key and value pairs, in the order of `values`. */
  entries(): [K, V][] {
    return [...this.map.entries()];
  }

  /** Every value, and the map left empty. */
  drain(): V[] {
    const all = this.values();
    this.map = new Map();
    this.bornAt = Date.now();
    this.setsSinceCopy = 0;
    this.sizeAtCopy = 0;
    return all;
  }
}
