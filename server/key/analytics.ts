/**
 * Rentals counted by the classification items (claims 16/22/28), for `npm run cli -- report` and,
 * later, the admin view. Pure over the stored records.
 */
import {
  type AnalyticsReport,
  IMPRESSION_TITLES,
  type ImpressionItem,
  type ImpressionReport,
  RENTAL_TITLES,
  REPORT_ITEMS,
  type RentalReport,
} from '../../shared/analytics-report.ts';
import { RentalError } from '../../shared/errors.ts';
import type { ConnectionHub } from '../connection-hub.ts';
import type { ClassificationRow, ImpressionRow, Repository } from '../store/repository.ts';

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

/** Impressions and completion rate by ad and by the viewing customer's segments. */
export function impressionReport(rows: ImpressionRow[]): ImpressionReport {
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

export function formatImpressions(r: ImpressionReport): string {
  const titles: Record<ImpressionItem, string> = {
    ...IMPRESSION_TITLES,
    ad: 'Ad impressions by ad (shown, completed, completion rate)',
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
    ...REPORT_ITEMS.map((k) => table(RENTAL_TITLES[k], r.by[k])),
    table('Rentals per day (UTC)', r.perDay),
  ].join('\n');
}

/** The whole report over the last `days` days: what the admin view draws and the CLI prints. */
export async function buildReport(
  repo: Repository,
  days: number,
  now = Date.now(),
): Promise<AnalyticsReport> {
  const since = now - days * 86_400_000;
  return {
    days,
    generatedAt: now,
    rentals: rentalReport(await repo.classifications(since)),
    impressions: impressionReport(await repo.impressionRows(since)),
  };
}

/**
 * The admin view's data. The role is read from the database on every request, so revoking an
 * admin (`npm run cli -- admin revoke`) takes effect at once, even on an open session.
 */
export function serveAnalytics(hub: ConnectionHub, repo: Repository): void {
  hub.handle('analytics.report', async (conn, m) => {
    const c = conn.customerId ? await repo.customerById(conn.customerId) : undefined;
    if (c?.role !== 'admin') throw new RentalError('FORBIDDEN', 'analytics are for admin accounts only');
    return buildReport(repo, m.days ?? 30);
  });
}
