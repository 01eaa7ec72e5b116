/** My rentals: each order's live state, pushed by the server: scheduled, delivering, key delivered, window open, expired. */
import type { OrderView } from '../../shared/protocol.ts';
import { Poster } from './catalog.tsx';
import { bytes, span, when } from './format.ts';
import { useNow, useStoreState } from './use-store.ts';

function describe(o: OrderView, now: number): { label: string; detail: string; tone: string } {
  switch (o.status) {
    case 'scheduled':
      return {
        label: 'Scheduled',
        detail: `Delivery starts ${when(o.contentAt)}; watchable from ${when(o.notBefore)}`,
        tone: 'waiting',
      };
    case 'delivering':
      return {
        label: o.contentState === 'waiting-terminal' ? 'Waiting for the terminal' : 'Delivering',
        detail:
          o.contentState === 'waiting-terminal'
            ? `“${o.terminalName}” is offline; delivery continues when it connects`
            : `${bytes(Math.min(o.size, o.chunksDelivered * 65536))} of ${bytes(o.size)} to “${o.terminalName}”`,
        tone: 'busy',
      };
    case 'waiting-key':
      return {
        label: 'Downloaded · waiting for key',
        detail: `The key arrives ${when(o.keyAt)} (in ${span(o.keyAt - now)})`,
        tone: 'waiting',
      };
    case 'key-delivered':
      return { label: 'Key delivered', detail: `Watchable from ${when(o.notBefore)}`, tone: 'ready' };
    case 'window-open':
      return {
        label: 'Key delivered · ready to watch',
        detail: `${span(o.notAfter - now)} left, until ${when(o.notAfter)}`,
        tone: 'ready',
      };
    case 'expired':
      return { label: 'Expired', detail: `Ended ${when(o.notAfter)}`, tone: 'ended' };
  }
}

export function Rentals() {
  const { orders, catalog } = useStoreState();
  const now = useNow();
  if (orders.length === 0) {
    return (
      <main>
        <h1>My rentals</h1>
        <p className="empty" data-testid="no-rentals">
          You have not rented anything yet. <a href="#/">Browse films</a>
        </p>
      </main>
    );
  }
  return (
    <main>
      <h1>My rentals</h1>
      <ul className="rentals">
        {orders.map((o) => {
          // A window that closed since the last push is shown as expired without waiting for the server.
          const status = o.status !== 'expired' && now >= o.notAfter ? 'expired' : o.status;
          const d = describe({ ...o, status }, now);
          const pct = Math.floor((o.chunksDelivered / o.totalChunks) * 100);
          const item = catalog.find((i) => i.itemNumber === o.itemNumber);
          return (
            <li
              key={o.orderId}
              className={`card rental ${d.tone}`}
              data-testid={`rental-${o.orderId}`}
              data-status={status}
            >
              <Poster
                item={{ posterUrl: item?.posterUrl ?? null, title: o.title }}
                className="poster small"
              />
              <div className="rental-body">
                <div className="rental-head">
                  <strong>{o.title}</strong>
                  <span className={`badge ${d.tone}`} data-testid="rental-status">
                    {d.label}
                  </span>
                </div>
                <p className="muted">{d.detail}</p>
                {(status === 'delivering' ||
                  (o.contentState !== 'delivered' && status !== 'expired' && status !== 'scheduled')) && (
                  <div
                    className="progress"
                    role="progressbar"
                    aria-valuemin={0}
                    aria-valuemax={100}
                    aria-valuenow={pct}
                    aria-label={`Delivery of ${o.title}`}
                    data-testid="rental-progress"
                  >
                    <div style={{ width: `${pct}%` }} />
                  </div>
                )}
                <p className="muted small">
                  On “{o.terminalName}” · ordered {when(o.createdAt)} · rental{' '}
                  {span(o.notAfter - o.notBefore)}
                </p>
              </div>
            </li>
          );
        })}
      </ul>
    </main>
  );
}
