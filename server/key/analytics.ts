/**
 * Rentals counted by the classification items (claims 16/22/28), for `npm run cli -- report` and,
 * later, the admin view. Pure over the stored records.
 */
import type { ClassificationRow, ImpressionRow } from '../store/repository.ts';

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

export type ImpressionItem = 'ad' | 'region' | 'ageBand' | 'terminalType';

/** Impressions and completion rate by ad and by the viewing customer's segments. */
export function impressionReport(rows: ImpressionRow[]): Record<ImpressionItem, [string, number, number][]> {
  const group = (key: (r: ImpressionRow) => string): [string, number, number][] => {
    const m = new Map<string, [number, number]>();
    for (const r of rows) {
      const v = m.get(key(r)) ?? [0, 0];
      m.set(key(r), [v[0] + 1, v[1] + (r.completed ? 1 : 0)]);
    }
    return [...m.entries()]
      .map(([k, [n, c]]) => [k, n, c] as [string, number, number])
      .sort((a, b) => b[1] - a[1]);
  };
  return {
    ad: group((r) => `${r.adId.slice(0, 8)} "${r.adText}"`),
    region: group((r) => r.region),
    ageBand: group((r) => r.ageBand),
    terminalType: group((r) => r.terminalType),
  };
}

export function formatImpressions(r: Record<ImpressionItem, [string, number, number][]>): string {
  const titles: Record<ImpressionItem, string> = {
    ad: 'Ad impressions by ad (shown, completed, completion rate)',
    region: 'Ad impressions by region',
    ageBand: 'Ad impressions by age band',
    terminalType: 'Ad impressions by terminal type',
  };
  return (Object.keys(titles) as ImpressionItem[])
    .map((k) => {
      const rows = r[k];
      const w = Math.max(10, ...rows.map(([x]) => x.length));
      const lines = rows.map(
        ([x, n, c]) =>
          `  ${x.padEnd(w)}  ${String(n).padStart(6)}  ${String(c).padStart(6)}  ${((100 * c) / n).toFixed(1).padStart(5)}%`,
      );
      return `${titles[k]}\n${lines.length ? lines.join('\n') : '  (none)'}\n`;
    })
    .join('\n');
}

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
