/**
 * Rentals counted by the classification items (claims 16/22/28), for `npm run cli -- report` and,
 * later, the admin view. Pure over the stored records.
 */
import type { ClassificationRow } from '../store/repository.ts';

export const REPORT_ITEMS = ['genre', 'dayPart', 'region', 'ageBand', 'lengthBand', 'terminalType'] as const;
export type ReportItem = (typeof REPORT_ITEMS)[number];

export interface RentalReport {
  total: number;
  by: Record<ReportItem, [string, number][]>;
  /** Rentals per UTC day, oldest first. */
  perDay: [string, number][];
}

function counts(values: string[]): [string, number][] {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

export function rentalReport(rows: ClassificationRow[]): RentalReport {
  const by = Object.fromEntries(
    REPORT_ITEMS.map((k) => [k, counts(rows.map((r) => String(r[k])))]),
  ) as RentalReport['by'];
  const perDay = counts(rows.map((r) => new Date(r.createdAt).toISOString().slice(0, 10))).sort((a, b) =>
    a[0].localeCompare(b[0]),
  );
  return { total: rows.length, by, perDay };
}

const TITLES: Record<ReportItem, string> = {
  genre: 'Rentals by genre',
  dayPart: 'Rentals by day-part (when the rental starts)',
  region: 'Rentals by region',
  ageBand: 'Rentals by age band',
  lengthBand: 'Rentals by rental length',
  terminalType: 'Rentals by terminal type',
};

/** Plain-text tables, one per item, then per day. */
export function formatReport(r: RentalReport): string {
  const table = (title: string, rows: [string, number][]) => {
    const w = Math.max(10, ...rows.map(([k]) => k.length));
    const lines = rows.map(
      ([k, n]) =>
        `  ${k.padEnd(w)}  ${String(n).padStart(6)}  ${((100 * n) / (r.total || 1)).toFixed(1).padStart(5)}%`,
    );
    return `${title}\n${lines.length ? lines.join('\n') : '  (none)'}\n`;
  };
  return [
    `Rentals: ${r.total}\n`,
    ...REPORT_ITEMS.map((k) => table(TITLES[k], r.by[k])),
    table('Rentals per day (UTC)', r.perDay),
  ].join('\n');
}
