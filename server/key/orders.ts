/**
 * Orders (claim 18): item number, rental period, destination terminal and a delivery start or key
 * delivery time. Placing one creates the per-order secret key, stores order and jobs in one durable
 * transaction, and only then acknowledges.
 */
import { ChurnMap } from '../../shared/churn-map.ts';
import { classify } from '../../shared/classification.ts';
import { chunkCount } from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import { orderTimes } from '../../shared/order-times.ts';
import type { OrderStatus, OrderView } from '../../shared/protocol.ts';
import { BoundedCache } from '../bounded-cache.ts';
import type { Cluster } from '../cluster.ts';
import type { ConnectionHub } from '../connection-hub.ts';
import { log } from '../log.ts';
import { nativeContentKey, nativeSecretboxSeal } from '../native-sodium.ts';
import type { CustomerRow, JobRow, NamedOrder, OrderRow, Repository } from '../store/repository.ts';
import { newOrderId } from './order-id.ts';
import type { Terminals } from './terminals.ts';

/**
 * One of an order's jobs, `claimedBy` this instance when it runs at once. Built whole, at module
 * level, for V8 (11, Node 20) and tsx: adding a property after an object spread (`{ ...job,
 * claimedBy }`) made a new hidden class and descriptor array for every job, allocated in the old
 * generation; and a named closure in the handler was a defineProperty per order (tsx keeps
 * function names). Both are in BENCHMARKS.md.
 */
export function jobOf(
  order: OrderRow,
  kind: JobRow['kind'],
  runAt: number,
  claimedBy: string | undefined,
): JobRow {
  return claimedBy === undefined
    ? { orderId: order.id, kind, runAt, terminalId: order.terminalId }
    : { orderId: order.id, kind, runAt, terminalId: order.terminalId, claimedBy };
}

export function orderStatus(o: OrderRow, now: number): OrderStatus {
  if (now >= o.notAfter) return 'expired';
  if (o.keyState === 'delivered' && o.contentState === 'delivered') {
    return now >= o.notBefore ? 'window-open' : 'key-delivered';
  }
  if (o.contentState === 'delivering' || o.contentState === 'waiting-terminal') return 'delivering';
  if (o.contentState === 'delivered') return 'waiting-key';
  if (o.keyState === 'delivered') return 'key-delivered';
  return 'scheduled';
}

/**
 * How long after an order update further changes wait, to go out together (see Orders.push): at most
 * five updates a second per order, a progress bar's pace; the first change after a quiet spell still
 * goes at once, and an order's answer counts as an update (see order.place). Each update is a
 * read, a message and a parse in the customer's app: with 50 ms, a loaded server sent 2.1-2.5
 * updates per order and the orders benchmark spent 0.64-0.65 ms of CPU per order in all; with 250
 * ms, 0.61-0.62 ms.
 */
export const ORDER_PUSH_COOLDOWN_MS = 200;

export class Orders {
  constructor(
    private readonly hub: ConnectionHub,
    private readonly repo: Repository,
    /** Shared by every module of this instance: order pushes and new jobs reach all instances. */
    private readonly cluster: Cluster,
    terminals: Terminals,
    private readonly storageKey: Uint8Array,
    private readonly minPeriodSeconds: number,
    ordersPerMinute: number = LIMITS.ordersPerMinute,
  ) {
    cluster.on('order', (orderId) =>
      this.pushHere(orderId).catch((err) =>
        log('warn', 'order-push-failed', { orderId, error: String(err) }),
      ),
    );
    hub.handle('order.place', async (conn, m) => {
      const customerId = conn.customerId as string;
      const now = Date.now();
      if ((await repo.countRecentOrders(customerId, now - 60_000)) >= ordersPerMinute) {
        throw new RentalError('RATE_LIMITED', `at most ${ordersPerMinute} orders a minute`);
      }
      const terminal = await terminals.ownTerminal(conn, m.terminalId);
      const item = await repo.catalogItem(m.itemNumber);
      if (!item) throw new RentalError('NOT_FOUND', `no title with item number ${m.itemNumber}`);
      const times = orderTimes(m, now, this.minPeriodSeconds);
      const order: OrderRow = {
        id: newOrderId(now),
        customerId,
        itemNumber: item.itemNumber,
        terminalId: terminal.id,
        periodSeconds: m.periodSeconds,
        ...times,
        wrappedKey: nativeSecretboxSeal(nativeContentKey(), this.storageKey),
        contentState: 'scheduled',
        keyState: 'scheduled',
        chunksDelivered: 0,
        totalChunks: chunkCount(item.size, LIMITS.chunkSize),
        size: item.size,
        chunkSize: LIMITS.chunkSize,
        priceCents: item.priceCents,
        createdAt: now,
      };
      const customer = await this.signUpAnswers(customerId);
      const classification = classify({
        genre: item.genre,
        ageBand: customer.ageBand,
        region: customer.region,
        startsAt: times.notBefore,
        utcOffsetMinutes: -new Date(times.notBefore).getTimezoneOffset(),
        periodSeconds: m.periodSeconds,
        terminalKind: terminal.kind,
      });
      // Jobs due now for a terminal held here are stored already taken by this instance and run at
      // once: looking them up again in the queue cost a query, a claim and a commit per order.
      const here =
        this.runTaken !== undefined && hub.role !== 'content' && hub.terminal(terminal.id) !== undefined;
      const claim = here ? cluster.instanceId : undefined;
      const jobs = [
        jobOf(order, 'content', times.contentAt, times.contentAt <= now ? claim : undefined),
        jobOf(order, 'key', times.keyAt, times.keyAt <= now ? claim : undefined),
        jobOf(order, 'expire', times.notAfter, undefined),
      ];
      const taken = jobs.filter((j) => j.claimedBy);
      // A delivery that starts as soon as the order is stored is recorded as under way with the
      // order itself: writing it when the job starts was a statement and an update to the customer
      // per order, a few milliseconds after the reply. (After a crash in between, the job runs again.)
      if (taken.some((j) => j.kind === 'content')) order.contentState = 'delivering';
      const nextAt = Math.min(...jobs.filter((j) => !j.claimedBy).map((j) => j.runAt));
      // Where the order can be read back before it is durable, its key job starts now: the licence
      // then shares the order's commit and flush, and is sent only once that flush is done (which
      // makes the order durable too); a failed order fails its licence with it. Content goes only
      // to an order that is stored.
      const early = repo.readsOwnWritesEarly ? taken.filter((j) => j.kind === 'key') : [];
      const later = taken.filter((j) => !early.includes(j));
      // The answer carries the order's state, so it counts as an update: a small title's delivery,
      // licence and window reach the store app as one update at the cooldown's end, not one at once
      // and another at the end (1.4 updates per order instead of 1.9 in the orders benchmark).
      this.startCooldown(order.id);
      const stored = repo.createOrder(order, jobs, classification);
      if (early.length > 0) this.runTaken?.(early, nextAt);
      await stored;
      if (later.length > 0) this.runTaken?.(later, nextAt);
      log('info', 'order-placed', {
        orderId: order.id,
        itemNumber: item.itemNumber,
        terminalId: terminal.id,
      });
      // Jobs for later, or for a terminal held elsewhere: whichever instance holds it looks now. (The
      // expiry is this instance's to time, and any instance's to run.)
      if (jobs.some((j) => !j.claimedBy && j.kind !== 'expire')) this.cluster.publish('jobs', '');
      // Names first: properties added after a spread would give each object a hidden class of its
      // own (see jobOf).
      return { order: this.view({ title: item.title, terminalName: terminal.name, ...order }) };
    });

    hub.handle('order.list', async (conn) => {
      const rows = await repo.ordersOfCustomer(conn.customerId as string);
      return { orders: rows.map((o) => this.view(o)) };
    });
  }

  /** A customer's sign-up answers never change: read once per customer (bounded). */
  private readonly signUp = new BoundedCache<string, Pick<CustomerRow, 'ageBand' | 'region'>>(20_000);
  private async signUpAnswers(customerId: string) {
    let answers = this.signUp.get(customerId);
    if (!answers) {
      const c = await this.repo.customerById(customerId);
      answers = { ageBand: c?.ageBand ?? null, region: c?.region ?? null };
      if (c) this.signUp.set(customerId, answers);
    }
    return answers;
  }

  view(o: NamedOrder): OrderView {
    return {
      orderId: o.id,
      itemNumber: o.itemNumber,
      title: o.title ?? `Item ${o.itemNumber}`,
      terminalId: o.terminalId,
      terminalName: o.terminalName ?? 'removed terminal',
      periodSeconds: o.periodSeconds,
      contentAt: o.contentAt,
      keyAt: o.keyAt,
      notBefore: o.notBefore,
      notAfter: o.notAfter,
      contentState: o.contentState,
      keyState: o.keyState,
      status: orderStatus(o, Date.now()),
      chunksDelivered: o.chunksDelivered,
      totalChunks: o.totalChunks,
      size: o.size,
      priceCents: o.priceCents,
      createdAt: o.createdAt,
    };
  }

  /**
   * Tell the customer's open store apps what changed, on every instance they are connected to. The
   * first change after a quiet spell goes out at once (several in one turn as one update); further
   * changes within ORDER_PUSH_COOLDOWN_MS of an update, or of the order's answer, go out together
   * when it ends, carrying the latest state.
   * An order of a small title changes several times within a few milliseconds (delivering, delivered,
   * key delivered): an update each was a database read here and a message the customer's app parses.
   */
  async push(orderId: string): Promise<void> {
    if (this.cooling.has(orderId)) {
      this.cooling.set(orderId, true);
      return;
    }
    this.startCooldown(orderId);
    this.toPush.push(orderId);
  }
  /**
   * Orders to publish at the end of this turn (each once: a pushed order is cooling until then). A
   * fresh array each turn, as `starting`: a long-lived Set kept every id it ever held (see ChurnMap).
   */
  private toPush: string[] = [];
  /** Orders updated (or answered) less than ORDER_PUSH_COOLDOWN_MS ago, and whether they changed since. */
  private readonly cooling = new ChurnMap<string, boolean>();
  /** Cooldowns started this turn: they share one timer. */
  private starting: string[] = [];
  private startCooldown(orderId: string): void {
    this.cooling.set(orderId, false);
    if (this.starting.length === 0)
      setImmediate(() => {
        const ids = this.starting;
        this.starting = [];
        const changed = this.toPush;
        this.toPush = [];
        for (const id of changed) this.cluster.publish('order', id);
        // A late update does not keep a stopping server up.
        setTimeout(() => this.cooled(ids), ORDER_PUSH_COOLDOWN_MS).unref();
      });
    this.starting.push(orderId);
  }
  private cooled(ids: string[]): void {
    for (const id of ids) {
      const changed = this.cooling.get(id);
      this.cooling.delete(id);
      if (changed) void this.push(id);
    }
  }
  /** Runs the jobs an order's placement took (set by the delivery queue). */
  runTaken: ((jobs: JobRow[], nextAt: number) => void) | undefined;

  private async pushHere(orderId: string): Promise<void> {
    const o = await this.repo.namedOrder(orderId);
    if (!o) return;
    const order = this.view(o);
    for (const c of this.hub.customerConns(o.customerId)) c.send({ type: 'order.update', order });
  }
}
