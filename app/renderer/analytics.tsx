/**
 * The admin view: rentals by the classification items and over time, ad impressions with their
 * completion rate by segment, drawn with Chart.js, and the same numbers as a CSV download. The
 * server refuses the data to anyone but an admin; the navigation hides the view from the rest.
 */
import { Chart, type ChartConfiguration, registerables } from 'chart.js';
import { useEffect, useRef, useState } from 'react';
import {
  type AnalyticsReport,
  IMPRESSION_ITEMS,
  IMPRESSION_TITLES,
  type ImpressionItem,
  RENTAL_TITLES,
  type ReportItem,
  reportToCsv,
} from '../../shared/analytics-report.ts';
import { RentalError } from '../../shared/errors.ts';
import { useSession, useStoreState } from './use-store.ts';

Chart.register(...registerables);
Chart.defaults.color = '#9aa1b2';
Chart.defaults.borderColor = '#2a2f3d';
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

const ACCENT = '#4f8cff';
const OK = '#3ecf8e';
const CHARTED_ITEMS: ReportItem[] = ['genre', 'dayPart', 'region', 'ageBand', 'lengthBand', 'terminalType'];

function ChartCanvas({ config, label }: { config: ChartConfiguration; label: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  // Drawn again only when the numbers change, not on every render of the store (pushes re-render it).
  const key = JSON.stringify(config);
  // biome-ignore lint/correctness/useExhaustiveDependencies: keyed on the configuration's contents
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, {
      ...config,
      options: { animation: false, maintainAspectRatio: false, ...config.options },
    });
    return () => chart.destroy();
  }, [key]);
  return (
    <div className="chart-box">
      <canvas ref={canvas} role="img" aria-label={label} />
    </div>
  );
}

function bar(rows: [string, number][], label: string): ChartConfiguration {
  return {
    type: 'bar',
    data: {
      labels: rows.map(([k]) => k),
      datasets: [{ label, data: rows.map(([, n]) => n), backgroundColor: ACCENT, maxBarThickness: 72 }],
    },
    options: {
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  };
}

function impressionsChart(rows: [string, number, number][]): ChartConfiguration {
  return {
    type: 'bar',
    data: {
      labels: rows.map(([k]) => k),
      datasets: [
        { label: 'Shown', data: rows.map(([, n]) => n), backgroundColor: ACCENT, maxBarThickness: 56 },
        { label: 'Completed', data: rows.map(([, , c]) => c), backgroundColor: OK, maxBarThickness: 56 },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  };
}

/** Every day of the period, with the days without rentals at zero, so the line reads as time. */
function everyDay(r: AnalyticsReport): [string, number][] {
  const have = new Map(r.rentals.perDay);
  const out: [string, number][] = [];
  for (let i = r.days - 1; i >= 0; i--) {
    const day = new Date(r.generatedAt - i * 86_400_000).toISOString().slice(0, 10);
    out.push([day, have.get(day) ?? 0]);
  }
  return out;
}

function perDayChart(rows: [string, number][]): ChartConfiguration {
  return {
    type: 'line',
    data: {
      labels: rows.map(([d]) => d),
      datasets: [
        {
          label: 'Rentals',
          data: rows.map(([, n]) => n),
          borderColor: ACCENT,
          backgroundColor: ACCENT,
          tension: 0.2,
        },
      ],
    },
    options: {
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  };
}

function Panel({
  title,
  testId,
  empty,
  config,
  children,
}: {
  title: string;
  testId: string;
  empty: boolean;
  config: ChartConfiguration;
  children: React.ReactNode;
}) {
  return (
    <section className="card chart-card" data-testid={testId}>
      <h2>{title}</h2>
      {empty ? (
        <p className="muted">No data in this period.</p>
      ) : (
        <ChartCanvas config={config} label={title} />
      )}
      <details>
        <summary className="muted small">Numbers</summary>
        {children}
      </details>
    </section>
  );
}

const pct = (c: number, n: number) => (n ? `${((100 * c) / n).toFixed(1)} %` : '–');

function download(report: AnalyticsReport) {
  const blob = new Blob([reportToCsv(report)], { type: 'text/csv;charset=utf-8' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `rental-analytics-${new Date(report.generatedAt).toISOString().slice(0, 10)}-${report.days}d.csv`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

export function Analytics() {
  const session = useSession();
  const { customer, conn } = useStoreState();
  const [days, setDays] = useState(30);
  const [report, setReport] = useState<AnalyticsReport | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!customer?.admin || conn !== 'online') return;
    let live = true;
    setError(null);
    session
      .analytics(days)
      .then((r) => live && setReport(r))
      .catch((err) => live && setError(err instanceof RentalError ? err.message : String(err)));
    return () => {
      live = false;
    };
  }, [session, customer, conn, days]);

  if (!customer?.admin) {
    return (
      <main>
        <p className="empty" data-testid="analytics-forbidden">
          Analytics are for admin accounts. Ask an operator to run <code>npm run cli -- admin grant</code> for
          your e-mail.
        </p>
      </main>
    );
  }
  const shown = report ? report.impressions.ad.reduce((s, [, n]) => s + n, 0) : 0;
  const completed = report ? report.impressions.ad.reduce((s, [, , c]) => s + c, 0) : 0;
  return (
    <main className="analytics" data-testid="analytics">
      <div className="toolbar">
        <h1>Analytics</h1>
        <label className="inline">
          Period{' '}
          <select value={days} onChange={(e) => setDays(Number(e.target.value))} data-testid="analytics-days">
            <option value={7}>Last 7 days</option>
            <option value={30}>Last 30 days</option>
            <option value={90}>Last 90 days</option>
            <option value={365}>Last 365 days</option>
          </select>
        </label>
        <button type="button" disabled={!report} onClick={() => report && download(report)} data-testid="csv">
          Export CSV
        </button>
      </div>
      {error && <p className="error">{error}</p>}
      {!report ? (
        !error && <p className="muted">Loading…</p>
      ) : (
        <>
          <div className="kpis">
            <div className="card">
              <strong data-testid="kpi-rentals">{report.rentals.total}</strong>
              <span className="muted">rentals</span>
            </div>
            <div className="card">
              <strong data-testid="kpi-impressions">{shown}</strong>
              <span className="muted">ad impressions</span>
            </div>
            <div className="card">
              <strong data-testid="kpi-completion">{pct(completed, shown)}</strong>
              <span className="muted">watched to the end</span>
            </div>
          </div>
          <div className="charts">
            <Panel
              title="Rentals over time (per UTC day)"
              testId="chart-perDay"
              empty={report.rentals.perDay.length === 0}
              config={perDayChart(everyDay(report))}
            >
              <CountTable rows={report.rentals.perDay} />
            </Panel>
            {CHARTED_ITEMS.map((k) => (
              <Panel
                key={k}
                title={RENTAL_TITLES[k]}
                testId={`chart-${k}`}
                empty={report.rentals.by[k].length === 0}
                config={bar(report.rentals.by[k], 'Rentals')}
              >
                <CountTable rows={report.rentals.by[k]} />
              </Panel>
            ))}
            {IMPRESSION_ITEMS.map((k: ImpressionItem) => (
              <Panel
                key={k}
                title={IMPRESSION_TITLES[k]}
                testId={`chart-impressions-${k}`}
                empty={report.impressions[k].length === 0}
                config={impressionsChart(report.impressions[k])}
              >
                <table className="numbers">
                  <tbody>
                    {report.impressions[k].map(([v, n, c]) => (
                      <tr key={v}>
                        <td>{v}</td>
                        <td>{n} shown</td>
                        <td>{pct(c, n)} completed</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </Panel>
            ))}
          </div>
        </>
      )}
    </main>
  );
}

function CountTable({ rows }: { rows: [string, number][] }) {
  return (
    <table className="numbers">
      <tbody>
        {rows.map(([v, n]) => (
          <tr key={v}>
            <td>{v}</td>
            <td>{n}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
