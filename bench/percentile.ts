/** The percentile the benchmarks report: `sorted`'s element at p % of its length (nearest rank, rounded down). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
