/**
 * The durable job queue of the key server. Every order has three jobs stored with it: content
 * delivery, key delivery and expiry. A job leaves the table only when its work is confirmed (the
 * terminal stored every chunk, acknowledged the licence, or the window closed), so a restart or an
 * offline terminal just means the job runs again later. Timers only decide *when* to look.
 *
 * The licence is never sent before its key-delivery time and never at or after notAfter, and it
 * is issued once: a resend carries the same signed bytes.
 */
import { ChurnMap } from '../../shared/churn-map.ts';
import { RentalError } from '../../shared/errors.ts';
import { BackgroundWork } from '../background-work.ts';
import { BoundedCache } from '../bounded-cache.ts';
import type { Cluster } from '../cluster.ts';
import type { Conn, ConnectionHub } from '../connection-hub.ts';
import type { ContentDispatcher, DeliveryStatus, PrerollAttachment } from '../content/delivery.ts';
import { LicenceSigner } from '../licence-signer.ts';
import { log } from '../log.ts';
import { nativeSecretboxOpen } from '../native-sodium.ts';
import type { ServerIdentity } from '../server-identity.ts';
import type { JobRow, OrderRow, Repository } from '../store/repository.ts';
import type { Orders } from './orders.ts';

const MAX_SLEEP_MS = 30_000;
const MAX_JOBS_PER_TICK = 50_000;
/** Orders whose jobs run at once in one pass: enough to fill a group commit, bounded in memory. */
const JOBS_IN_PARALLEL = 64;

export class DeliveryQueue {
  private timer: NodeJS.Timeout | undefined;
  /** Licences are sealed and signed off the event loop (licence-signer.ts); started on first use. */
  private readonly signer: LicenceSigner;
  private ticking: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(
    private readonly hub: ConnectionHub,
    private readonly repo: Repository,
    /** Shared by every module of this instance: new jobs and terminal changes from all instances. */
    private readonly cluster: Cluster,
    private readonly identity: ServerIdentity,
    private readonly orders: Orders,
    private readonly content: ContentDispatcher,
    /** Called when a terminal acknowledged a licence (an ad goes with it). */
    private readonly afterLicence: (terminalId: string) => void = () => {},
    /** The signed pre-roll to attach to an order's delivery, if any (claims 14/20/26). */
    private readonly prerollFor: (o: OrderRow) => Promise<PrerollAttachment | undefined> = async () =>
      undefined,
  ) {
    // A terminal (re)connected here (its presence is recorded by then): what waited for it, or went
    // to its previous connection, on whichever instance, goes again.
    cluster.on('terminal', (payload) => {
      // Only presence changes ("id"); a link or unlink ("id:link…") reaches no terminal it did not.
      const [terminalId, what] = payload.split(':') as [string, string?];
      if (what !== undefined || !hub.terminal(terminalId)) return;
      void repo
        .wakeTerminalJobs(terminalId)
        .then((n) => n && this.poke())
        .catch((err) => log('error', 'queue-wake-failed', { error: String(err) }));
    });
    // Another instance (or this one) queued jobs: look, in case they are for a terminal held here.
    cluster.on('jobs', () => this.poke());
    this.signer = new LicenceSigner(identity.signSecretKey);
    orders.runTaken = (jobs, nextAt) => this.runTaken(jobs, nextAt);
    hub.handle('licence.ack', async (conn, m) => {
      const o = await repo.orderById(m.orderId);
      if (!o || o.terminalId !== conn.terminalId)
        throw new RentalError('NOT_FOUND', 'no such licence for this terminal');
      this.awaitingAck.get(conn)?.delete(o.id);
      if (o.keyState !== 'delivered') {
        await repo.setKeyState(o.id, 'delivered');
        await repo.completeJob(o.id, 'key');
        log('info', 'licence-acknowledged', { orderId: o.id });
        await orders.push(o.id);
        this.afterLicence(o.terminalId);
      }
      return {};
    });
  }

  start(): void {
    // Nothing is in flight in a fresh process: every job is looked at again. On a shared database
    // other instances' jobs are theirs; those of instances that died come back through recoverJobs.
    void (this.repo.shared ? this.repo.recoverJobs(Date.now()) : this.repo.resetJobStates()).then(() =>
      this.poke(),
    );
  }

  /** Stop looking at the queue; resolves once a look in progress has finished. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.ticking;
    await this.running.settled();
    await this.signer.close();
  }

  /** Look at the queue now (coalesces bursts of pokes into one pass). */
  poke(): void {
    if (this.closed) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = this.tick()
      .catch((err) => log('error', 'queue-tick-failed', { error: String(err) }))
      .finally(() => {
        this.ticking = undefined;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }

  /**
   * The content store reports progress; the key server keeps the durable record and tells the
   * customer. Reports for one order are handled in the order they came.
   */
  onContentStatus(s: DeliveryStatus): Promise<void> {
    const done = (this.statusChains.get(s.orderId) ?? Promise.resolve()).then(() => this.recordStatus(s));
    const settled = done.catch(() => undefined);
    this.statusChains.set(s.orderId, settled);
    void settled.then(() => {
      if (this.statusChains.get(s.orderId) === settled) this.statusChains.delete(s.orderId);
    });
    return done;
  }
  private readonly statusChains = new ChurnMap<string, Promise<void>>();

  private async recordStatus(s: DeliveryStatus): Promise<void> {
    const o = await this.repo.orderById(s.orderId);
    if (!o || o.contentState === 'delivered') return;
    // Nothing new (a delivery starting reports the state its job already recorded): no write, no update.
    if (o.contentState === s.state && o.chunksDelivered === s.have) return;
    await this.repo.setContentProgress(o.id, s.state, s.have);
    if (s.state === 'delivered') await this.repo.completeJob(o.id, 'content');
    if (s.state === 'waiting-terminal') await this.repo.setJobState(o.id, 'content', 'parked');
    await this.orders.push(o.id);
  }

  private async tick(): Promise<void> {
    clearTimeout(this.timer);
    const now = Date.now();
    // Due jobs stay in the table until confirmed (a terminal may be offline for days), so each
    // look reads them again; the ones already handed off return at once.
    const due = await this.repo.dueJobs(
      now,
      MAX_JOBS_PER_TICK,
      this.cluster.instanceId,
      this.hub.role === 'key',
    );
    // Orders run side by side, so their durable writes share one commit and one flush; the jobs
    // of one order run in turn.
    const byOrder = new Map<string, JobRow[]>();
    for (const job of due) {
      const jobs = byOrder.get(job.orderId);
      if (jobs) jobs.push(job);
      else byOrder.set(job.orderId, [job]);
    }
    const groups = [...byOrder.values()];
    let taken = 0;
    const worker = async () => {
      for (let jobs = groups[taken++]; jobs; jobs = groups[taken++])
        for (const job of jobs) await this.runOrRelease(job, now);
    };
    await Promise.all(Array.from({ length: Math.min(JOBS_IN_PARALLEL, groups.length) }, worker));
    const next = Math.min(now + MAX_SLEEP_MS, (await this.repo.nextJobAt(now)) ?? Number.POSITIVE_INFINITY);
    this.timerAt = Number.POSITIVE_INFINITY;
    this.lookBy(next);
  }

  /** When the timer will look at the queue next. */
  private timerAt = Number.POSITIVE_INFINITY;
  /** Make sure the queue is looked at by `at` (a job stored meanwhile is due then). */
  private lookBy(at: number): void {
    if (this.closed || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timerAt = Number.POSITIVE_INFINITY;
        this.poke();
      },
      Math.max(10, at - Date.now()),
    );
  }

  /**
   * Jobs this instance took as they were stored (a new order's jobs, due now, for a terminal held
   * here; see Orders): they run at once, without a look at the queue to find and claim them. The
   * order's other jobs are looked at by `nextAt`.
   */
  runTaken(jobs: JobRow[], nextAt: number): void {
    if (this.closed) return;
    this.running.add(
      (async () => {
        for (const job of jobs) await this.runOrRelease(job, Date.now(), true);
      })(),
      (err) => log('error', 'job-failed', { error: String(err) }),
    );
    this.lookBy(nextAt);
  }
  /** Jobs run as their orders were placed; close waits for them. */
  private readonly running = new BackgroundWork();

  /**
   * Licences sent over a connection and not yet acknowledged on it. A wake for that connection's
   * own arrival can land after its licence went out (the presence write and its notice are slow
   * on a busy database): the job runs again, but the same connection does not get it twice.
   */
  private readonly awaitingAck = new WeakMap<Conn, ChurnMap<string, true>>();

  /** A terminal's public key never changes, and every licence needs one: read once per terminal. */
  private readonly terminalKeys = new BoundedCache<string, Uint8Array>(10_000);
  private async terminalKey(terminalId: string): Promise<Uint8Array | undefined> {
    let key = this.terminalKeys.get(terminalId);
    if (!key) {
      key = (await this.repo.terminalById(terminalId))?.signPublicKey;
      if (key) this.terminalKeys.set(terminalId, key);
    }
    return key;
  }

  /** @param placed the job runs as its order is placed (runTaken): nothing of it can have gone out yet. */
  private async runOrRelease(job: JobRow, now: number, placed = false): Promise<void> {
    try {
      await this.run(job, now, placed);
    } catch (err) {
      // A job started with its order fails with it when the order's commit fails (a full disk): the
      // customer was told, the commit's failure is logged, and the job is gone with the order.
      if (placed && !(await this.repo.orderById(job.orderId).catch(() => undefined))) {
        log('info', 'job-dropped', { orderId: job.orderId, kind: job.kind, reason: 'order not stored' });
        return;
      }
      log('error', 'job-failed', { orderId: job.orderId, kind: job.kind, error: String(err) });
      await this.repo.setJobState(job.orderId, job.kind, 'pending').catch(() => undefined);
    }
  }

  private async run(job: JobRow, now: number, placed: boolean): Promise<void> {
    const o = await this.repo.orderById(job.orderId);
    if (!o) return this.repo.completeJob(job.orderId, job.kind);
    if (job.kind === 'expire') {
      this.content.cancel(o.id);
      await this.repo.wipeOrderKey(o.id);
      if (o.keyState !== 'delivered') {
        await this.repo.setKeyState(o.id, 'not-delivered');
        await this.repo.completeJob(o.id, 'key');
      }
      await this.repo.completeJob(o.id, 'content');
      await this.repo.completeJob(o.id, 'expire');
      log('info', 'order-expired', { orderId: o.id });
      return this.orders.push(o.id);
    }
    if (now >= o.notAfter || !o.wrappedKey) return; // the expire job closes it
    const contentKey = nativeSecretboxOpen(o.wrappedKey, this.identity.storageKey);

    if (job.kind === 'content') {
      // The job stays as taken ('claimed') while its delivery runs: marking it 'dispatched' as well
      // was a write per job that no query tells apart (every state but 'pending' waits alike).
      const preroll = await this.prerollFor(o);
      // The state the delivery starts in, recorded before the content store starts, so its first
      // report finds it (and is not written again: recordStatus skips a report that changes
      // nothing). An order placed for a terminal online here is stored as delivering already
      // (Orders): it is written only if that is no longer so.
      const online = this.hub.role !== 'all' || this.hub.isOnline(o.terminalId);
      const starting = online ? 'delivering' : 'waiting-terminal';
      if (
        (o.contentState === 'scheduled' || o.contentState === 'delivering') &&
        o.contentState !== starting
      ) {
        await this.repo.setContentProgress(o.id, starting, o.chunksDelivered);
        await this.orders.push(o.id);
      }
      this.content.instruct({
        ...(preroll ? { preroll } : {}),
        orderId: o.id,
        itemNumber: o.itemNumber,
        terminalId: o.terminalId,
        contentKey,
        notBefore: o.notBefore,
        notAfter: o.notAfter,
        // Only a delivery starting as its order is placed is surely new to the terminal: a job run
        // again (a restart, a terminal back, a content server lost) may find chunks there that no
        // report of which was recorded, and then asks where to start.
        fresh: placed && o.chunksDelivered === 0,
      });
      return;
    }

    // key job
    const conn = this.hub.terminal(o.terminalId);
    if (!conn) {
      await this.repo.setJobState(o.id, 'key', 'parked');
      if (o.keyState !== 'waiting-terminal') {
        await this.repo.setKeyState(o.id, 'waiting-terminal');
        await this.orders.push(o.id);
      }
      return;
    }
    let licence = await this.repo.licenceOf(o.id);
    if (!licence) {
      const signPublicKey = await this.terminalKey(o.terminalId);
      if (!signPublicKey) return;
      licence = await this.signer.issue(
        {
          orderId: o.id,
          itemNumber: o.itemNumber,
          notBefore: o.notBefore,
          notAfter: o.notAfter,
          issuedAt: now,
          size: o.size,
          chunkSize: o.chunkSize,
          totalChunks: o.totalChunks,
        },
        contentKey,
        signPublicKey,
      );
      licence = await this.repo.saveLicence(o.id, licence, now);
    }
    // Taken until acknowledged; a reconnecting terminal wakes the job and gets the same licence again.
    // A ChurnMap: a connection's ids come and go within milliseconds (see there).
    let sent = this.awaitingAck.get(conn);
    if (!sent) {
      sent = new ChurnMap();
      this.awaitingAck.set(conn, sent);
    }
    if (sent.has(o.id)) return;
    sent.set(o.id, true);
    conn.send({ type: 'licence.deliver', orderId: o.id, licence });
    log('info', 'licence-sent', { orderId: o.id, terminalId: o.terminalId });
  }
}
