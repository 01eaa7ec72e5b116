/**
 * The store app's state and its one connection to the server. Keeps the session token across
 * restarts, reconnects with backoff, resumes the session, and applies server pushes (order progress,
 * terminal presence) as they come: the UI never polls.
 */
import type { AnalyticsReport } from '../../shared/analytics-report.ts';
import type { AgeBand, Region } from '../../shared/classification.ts';
import { RentalError } from '../../shared/errors.ts';
import type {
  CatalogItem,
  CustomerView,
  OrderView,
  PlaceOrder,
  TerminalView,
} from '../../shared/protocol.ts';
import { RentalClient, type SocketFactory } from '../../shared/rental-client.ts';

export type ConnState = 'connecting' | 'online' | 'offline';

export interface StoreState {
  conn: ConnState;
  /** Seconds until the next reconnect attempt, when offline. */
  retryIn: number | null;
  /** True until a stored session was resumed or found invalid. */
  restoring: boolean;
  customer: CustomerView | null;
  catalog: CatalogItem[];
  terminals: TerminalView[];
  orders: OrderView[];
}

export interface TokenStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const TOKEN_KEY = 'rental.session';

export class StoreSession {
  private state: StoreState = {
    conn: 'connecting',
    retryIn: null,
    restoring: true,
    customer: null,
    catalog: [],
    terminals: [],
    orders: [],
  };
  private readonly listeners = new Set<() => void>();
  private client: RentalClient | undefined;
  private backoff = 1000;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly wsUrl: string,
    private readonly socketFactory: SocketFactory,
    private readonly tokens: TokenStore,
  ) {}

  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };
  getState = () => this.state;

  private set(patch: Partial<StoreState>) {
    this.state = { ...this.state, ...patch };
    for (const fn of this.listeners) fn();
  }

  /** Connect (again). Resumes a stored session if there is one. */
  async start(): Promise<void> {
    clearTimeout(this.retryTimer);
    this.set({ conn: 'connecting', retryIn: null });
    const client = new RentalClient(this.wsUrl, this.socketFactory);
    this.client = client;
    try {
      await client.connect();
    } catch {
      return this.offline();
    }
    client.onClose(() => {
      if (this.client === client) this.offline();
    });
    client.on('order.update', (m) => this.upsertOrder(m.order));
    client.on('terminal.update', (m) => this.upsertTerminal(m.terminal));
    client.on('terminal.removed', (m) =>
      this.set({ terminals: this.state.terminals.filter((t) => t.terminalId !== m.terminalId) }),
    );
    this.backoff = 1000;
    this.set({ conn: 'online' });
    const catalog = await client.request('catalog.list', {}).catch(() => undefined);
    if (catalog) this.set({ catalog: catalog.items });
    const token = this.tokens.getItem(TOKEN_KEY);
    if (token) {
      try {
        const r = await client.request('auth.resume', { token });
        await this.signedIn(r.token, r.customer);
      } catch (err) {
        if (err instanceof RentalError && err.code === 'SESSION_EXPIRED') this.tokens.removeItem(TOKEN_KEY);
      }
    }
    this.set({ restoring: false });
  }

  /** Try to reconnect now instead of waiting for the timer. */
  retry = () => void this.start();

  private offline() {
    this.client = undefined;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 15_000);
    this.set({ conn: 'offline', retryIn: Math.round(wait / 1000), restoring: false });
    this.retryTimer = setTimeout(() => void this.start(), wait);
  }

  private api(): RentalClient {
    if (!this.client?.connected) throw new RentalError('INTERNAL', 'not connected to the server; retrying');
    return this.client;
  }

  private async signedIn(token: string, customer: CustomerView) {
    this.tokens.setItem(TOKEN_KEY, token);
    this.set({ customer });
    const api = this.api();
    const [terminals, orders] = await Promise.all([
      api.request('terminal.list', {}),
      api.request('order.list', {}),
    ]);
    this.set({ terminals: terminals.terminals, orders: orders.orders });
  }

  async signUp(
    email: string,
    password: string,
    name: string,
    about: { ageBand?: AgeBand; region?: Region } = {},
  ) {
    const r = await this.api().request('auth.register', { email, password, name, ...about });
    await this.signedIn(r.token, r.customer);
  }

  async signIn(email: string, password: string) {
    const r = await this.api().request('auth.login', { email, password });
    await this.signedIn(r.token, r.customer);
  }

  async signOut() {
    await this.client?.request('auth.logout', {}).catch(() => undefined);
    this.tokens.removeItem(TOKEN_KEY);
    this.set({ customer: null, terminals: [], orders: [] });
  }

  async linkTerminal(code: string, name: string) {
    const r = await this.api().request('terminal.link', { code, name });
    this.upsertTerminal(r.terminal);
    return r.terminal;
  }

  async renameTerminal(terminalId: string, name: string) {
    const r = await this.api().request('terminal.rename', { terminalId, name });
    this.upsertTerminal(r.terminal);
  }

  async unlinkTerminal(terminalId: string) {
    await this.api().request('terminal.unlink', { terminalId });
    this.set({ terminals: this.state.terminals.filter((t) => t.terminalId !== terminalId) });
  }

  async placeOrder(order: Omit<PlaceOrder, 'type' | 'id'>): Promise<OrderView> {
    const r = await this.api().request('order.place', order);
    this.upsertOrder(r.order);
    return r.order;
  }

  /** Admins only; anyone else gets FORBIDDEN from the server. */
  analytics(days: number): Promise<AnalyticsReport> {
    return this.api().request('analytics.report', { days });
  }

  private upsertOrder(o: OrderView) {
    const rest = this.state.orders.filter((x) => x.orderId !== o.orderId);
    this.set({ orders: [o, ...rest].sort((a, b) => b.createdAt - a.createdAt) });
  }

  private upsertTerminal(t: TerminalView) {
    const i = this.state.terminals.findIndex((x) => x.terminalId === t.terminalId);
    const terminals = [...this.state.terminals];
    if (i >= 0) terminals[i] = t;
    else terminals.push(t);
    this.set({ terminals });
  }
}
