/** The store's frame: connection banner, navigation, and the screen for the current route. */
import { Analytics } from './analytics.tsx';
import { Catalog, TitlePage } from './catalog.tsx';
import { Rentals } from './rentals.tsx';
import { SignIn } from './sign-in.tsx';
import { Terminals } from './terminals.tsx';
import { useRoute, useSession, useStoreState } from './use-store.ts';

function ConnectionBanner() {
  const session = useSession();
  const { conn, retryIn } = useStoreState();
  if (conn === 'online') return null;
  return (
    <div className={`banner ${conn}`} role="status" data-testid="conn-banner">
      {conn === 'connecting' ? (
        'Connecting to the store…'
      ) : (
        <>
          Can’t reach the store server at {session.wsUrl.replace(/^ws/, 'http').replace(/\/ws$/, '')}.
          {retryIn !== null && ` Retrying in ${retryIn} s.`}{' '}
          <button type="button" onClick={session.retry} data-testid="conn-retry">
            Retry now
          </button>
        </>
      )}
    </div>
  );
}

export function StoreApp() {
  const session = useSession();
  const { customer, restoring, orders } = useStoreState();
  const route = useRoute();
  if (restoring) {
    return (
      <>
        <ConnectionBanner />
        <main className="empty">Loading…</main>
      </>
    );
  }
  if (!customer) {
    return (
      <>
        <ConnectionBanner />
        <SignIn />
      </>
    );
  }
  const active = orders.filter((o) => o.status !== 'expired').length;
  const tab = (name: string, href: string, label: string) => (
    <a
      href={href}
      className={route.name === name || (name === 'catalog' && route.name === 'title') ? 'active' : ''}
      data-testid={`nav-${name}`}
    >
      {label}
    </a>
  );
  return (
    <>
      <ConnectionBanner />
      <header className="top">
        <a href="#/" className="brand">
          Rental<span>Delivery</span>
        </a>
        <nav>
          {tab('catalog', '#/', 'Films')}
          {tab('rentals', '#/rentals', active ? `My rentals (${active})` : 'My rentals')}
          {tab('terminals', '#/terminals', 'Terminals')}
          {customer.admin && tab('analytics', '#/analytics', 'Analytics')}
        </nav>
        <div className="account">
          <span data-testid="account-name">{customer.name}</span>
          <button
            type="button"
            className="link"
            onClick={() => void session.signOut()}
            data-testid="sign-out"
          >
            Sign out
          </button>
        </div>
      </header>
      {route.name === 'catalog' && <Catalog />}
      {route.name === 'title' && <TitlePage itemNumber={route.itemNumber} />}
      {route.name === 'rentals' && <Rentals />}
      {route.name === 'terminals' && <Terminals />}
      {route.name === 'analytics' && <Analytics />}
    </>
  );
}
