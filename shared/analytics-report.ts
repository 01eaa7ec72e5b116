/**
 * The analytics report as it travels to the admin view, and its CSV form. The server computes it
 * (server/key/analytics.ts); `npm run cli -- report` prints the same numbers as text.
 */
import { z } from 'zod';

/** Classification items rentals are counted by (claims 16/22/28). */
export const REPORT_ITEMS = ['genre', 'dayPart', 'region', 'ageBand', 'lengthBand', 'terminalType'] as const;
export type ReportItem = (typeof REPORT_ITEMS)[number];
/** What ad impressions are grouped by: the ad, and the viewing customer's segments. */
export const IMPRESSION_ITEMS = ['ad', 'region', 'ageBand', 'terminalType'] as const;
export type ImpressionItem = (typeof IMPRESSION_ITEMS)[number];

const Label = z.string().max(300);
/** [value, rentals] */
const Counts = z.array(z.tuple([Label, z.number().int().nonnegative()])).max(5000);
/** [value, shown, completed] */
const Rates = z
  .array(z.tuple([Label, z.number().int().nonnegative(), z.number().int().nonnegative()]))
  .max(5000);

export const RentalReport = z.strictObject({
  total: z.number().int().nonnegative(),
  by: z.strictObject(
    Object.fromEntries(REPORT_ITEMS.map((k) => [k, Counts])) as Record<ReportItem, typeof Counts>,
  ),
  /** Rentals per UTC day, oldest first. */
  perDay: Counts,
});
export type RentalReport = z.infer<typeof RentalReport>;

export const ImpressionReport = z.strictObject(
  Object.fromEntries(IMPRESSION_ITEMS.map((k) => [k, Rates])) as Record<ImpressionItem, typeof Rates>,
);
export type ImpressionReport = z.infer<typeof ImpressionReport>;

export const AnalyticsReport = z.strictObject({
  days: z.number().int().positive(),
  generatedAt: z.number().int(),
  rentals: RentalReport,
  impressions: ImpressionReport,
});
export type AnalyticsReport = z.infer<typeof AnalyticsReport>;

export const RENTAL_TITLES: Record<ReportItem, string> = {
  genre: 'Rentals by genre',
  dayPart: 'Rentals by day-part (when the rental starts)',
  region: 'Rentals by region',
  ageBand: 'Rentals by age band',
  lengthBand: 'Rentals by rental length',
  terminalType: 'Rentals by terminal type',
};

export const IMPRESSION_TITLES: Record<ImpressionItem, string> = {
  ad: 'Ad impressions by ad',
  region: 'Ad impressions by region',
  ageBand: 'Ad impressions by age band',
  terminalType: 'Ad impressions by terminal type',
};

const csvCell = (v: string | number) => {
  const s = String(v);
  // Quote what needs it, and defuse cells a spreadsheet would run as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
};

/** One table: section, value, count, and for impressions completed and completion rate. */
export function reportToCsv(r: AnalyticsReport): string {
  const rows: (string | number)[][] = [['section', 'value', 'count', 'completed', 'completion_rate']];
  for (const k of REPORT_ITEMS)
    for (const [v, n] of r.rentals.by[k]) rows.push([`rentals_by_${k}`, v, n, '', '']);
  for (const [day, n] of r.rentals.perDay) rows.push(['rentals_per_day', day, n, '', '']);
  for (const k of IMPRESSION_ITEMS)
    for (const [v, n, c] of r.impressions[k])
      rows.push([`impressions_by_${k}`, v, n, c, n ? (c / n).toFixed(3) : '']);
  return `${rows.map((row) => row.map(csvCell).join(',')).join('\r\n')}\r\n`;
}
