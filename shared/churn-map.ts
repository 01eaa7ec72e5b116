/**
 * A map for entries that come and go within milliseconds, many a second: licences awaiting the
 * signing thread, an order's update cooldown, a delivery under way. It keeps them in a plain object.
 *
 * A long-lived `Map` or `Set` links each hash table it outgrows to the next one. Once one of those
 * tables has reached V8's old generation, the young collections keep the chain behind it alive
 * until the next full collection: everything put into the map since (and all it referenced) was
 * promoted, although taken out long before. A lab loop with 60 KB short-lived entries, a thousand a
 * second: a long-lived Map promoted 30 MB in eight scavenges, a plain object nothing. In the orders
 * benchmark the server's old generation grew by 6.4-7.8 MB a second at 1,000/s, 4.5-5.7 with these
 * (docs/benchmarks-history.md, the twenty-first session).
 */
export class ChurnMap<K extends string | number, V> {
  private byKey: Record<string | number, V> = Object.create(null);
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: K): V | undefined {
    return this.byKey[key];
  }

  has(key: K): boolean {
    return key in this.byKey;
  }

  set(key: K, value: V): void {
    if (!(key in this.byKey)) this.count++;
    this.byKey[key] = value;
  }

  delete(key: K): boolean {
    if (!(key in this.byKey)) return false;
    delete this.byKey[key];
    this.count--;
    return true;
  }

  /** The values (whole-number keys first, ascending, then the others in the order they were set). */
  values(): V[] {
    return Object.values(this.byKey);
  }

  /** The keys, as strings (object keys are), in the order of `values`. */
  keys(): string[] {
    return Object.keys(this.byKey);
  }

  /** Key and value pairs, in the order of `values`. */
  entries(): [string, V][] {
    return Object.entries(this.byKey);
  }

  /** Every value, and the map left empty. */
  drain(): V[] {
    const all = this.values();
    this.byKey = Object.create(null);
    this.count = 0;
    return all;
  }
}
