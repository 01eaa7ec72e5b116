/**
 * Terminals: registration by public key, "link your TV" pairing codes, and a customer's own list.
 * A customer only ever sees or targets terminals linked to their account; anything else is NOT_FOUND.
 */
import { randomInt } from 'node:crypto';
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import type { TerminalView, TerminalWelcome } from '../../shared/protocol.ts';
import { BackgroundWork } from '../background-work.ts';
import type { Cluster } from '../cluster.ts';
import type { Conn, ConnectionHub } from '../connection-hub.ts';
import { log } from '../log.ts';
import type { Repository, TerminalRow } from '../store/repository.ts';
import { AttemptLimiter } from './attempt-limiter.ts';

const CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'; // no 0/O, 1/I: read off a TV across a room

export const formatPairingCode = (code: string) => `${code.slice(0, 4)}-${code.slice(4)}`;
export const normalisePairingCode = (code: string) => code.replace('-', '').toUpperCase();

export class Terminals {
  private readonly pairingAttempts = new AttemptLimiter(
    LIMITS.pairingFailuresPerWindow,
    LIMITS.pairingFailureWindowMs,
    'too many wrong pairing codes; wait 10 minutes and check the code on the terminal',
  );

  constructor(
    private readonly hub: ConnectionHub,
    private readonly repo: Repository,
    readonly cluster: Cluster,
    private readonly contentUrls: () => string[],
    private readonly pairingCodeTtlMs: number = LIMITS.pairingCodeTtlMs,
  ) {
    hub.handle('terminal.auth', async (conn, m) => {
      const terminalId = hub.authenticateTerminal(conn, m.signPublicKey, m.signature, m.pushedOffers);
      await repo.upsertTerminal({
        id: terminalId,
        signPublicKey: conn.terminalKey as Uint8Array,
        kind: m.kind,
        name: m.name,
        createdAt: Date.now(),
      });
      await repo.touchTerminal(terminalId, Date.now());
      log('info', 'terminal-online', { terminalId });
      return this.welcome(terminalId);
    });

    hub.handle('terminal.pairing.refresh', async (conn) => this.welcome(conn.terminalId as string, true));

    hub.handle('terminal.link', async (conn, m) => {
      const customerId = conn.customerId as string;
      // Check the limit first, so a refused link does not use up the code on the terminal's screen.
      const mine = await repo.terminalsOfCustomer(customerId);
      if (mine.length >= LIMITS.terminalsPerCustomer) {
        throw new RentalError(
          'TERMINAL_LIMIT',
          `an account can link at most ${LIMITS.terminalsPerCustomer} terminals; unlink one first`,
        );
      }
      this.pairingAttempts.check(customerId);
      const terminalId = await repo.takePairingCode(normalisePairingCode(m.code), Date.now());
      const t = terminalId ? await repo.terminalById(terminalId) : undefined;
      if (!t || t.customerId) {
        this.pairingAttempts.fail(customerId);
        throw new RentalError(
          'PAIRING_CODE_INVALID',
          'that code is unknown, already used or expired; check the code on the terminal',
        );
      }
      await repo.linkTerminal(t.id, customerId, m.name, Date.now());
      log('info', 'terminal-linked', { terminalId: t.id, customerId });
      // The terminal may be connected to another instance: that one tells it, and the owner's apps.
      cluster.publish('terminal', `${t.id}:link`);
      return { terminal: await this.viewOf(t.id) };
    });

    hub.handle('terminal.list', async (conn) => ({
      terminals: (await repo.terminalsOfCustomer(conn.customerId as string)).map((t) => this.view(t)),
    }));

    hub.handle('terminal.rename', async (conn, m) => {
      await this.ownTerminal(conn, m.terminalId);
      await repo.renameTerminal(m.terminalId, m.name);
      const terminal = await this.viewOf(m.terminalId);
      this.pushToOwner(conn.customerId as string, terminal);
      return { terminal };
    });

    hub.handle('terminal.unlink', async (conn, m) => {
      await this.ownTerminal(conn, m.terminalId);
      await repo.unlinkTerminal(m.terminalId);
      log('info', 'terminal-unlinked', { terminalId: m.terminalId });
      // The former owner's store apps on every instance drop it; the terminal shows a code again.
      cluster.publish('terminal', `${m.terminalId}:link:${conn.customerId}`);
      return {};
    });

    // Presence is recorded before anyone is told, so every instance reads the same answer.
    const me = cluster.instanceId;
    hub.on('terminal-online', (c) => {
      const id = c.terminalId as string;
      this.presenceWrite(
        id,
        repo.setPresence(id, me, true, Date.now()).then(() => cluster.publish('terminal', id)),
      );
    });
    hub.on('terminal-offline', (c) => {
      const id = c.terminalId as string;
      this.presenceWrite(
        id,
        repo
          .setPresence(id, me, false, Date.now())
          .then(() => repo.touchTerminal(id, Date.now()))
          .then(() => cluster.publish('terminal', id)),
      );
    });
    cluster.on('terminal', (payload) =>
      this.onTerminalChange(payload).catch((err) =>
        log('warn', 'terminal-push-failed', { terminal: payload, error: String(err) }),
      ),
    );
  }

  /** Presence writes under way: a stopping server lets them land before it closes its store. */
  private readonly presenceWrites = new BackgroundWork();
  private presenceWrite(terminalId: string, write: Promise<void>): void {
    this.presenceWrites.add(write, (err) =>
      log('error', 'presence-failed', { terminalId, error: String(err) }),
    );
  }
  presenceSettled(): Promise<void> {
    return this.presenceWrites.settled();
  }

  /** A terminal came, went, or was linked or unlinked, on this or another instance. */
  private async onTerminalChange(payload: string): Promise<void> {
    const [terminalId, what, formerOwner] = payload.split(':') as [string, string?, string?];
    const t = await this.repo.terminalById(terminalId);
    if (!t) return;
    if (t.customerId) this.pushToOwner(t.customerId, this.view(t));
    else if (formerOwner)
      for (const c of this.hub.customerConns(formerOwner)) c.send({ type: 'terminal.removed', terminalId });
    const live = this.hub.terminal(terminalId);
    if (what !== 'link' || !live) return;
    const w = await this.welcome(terminalId);
    live.send({
      type: 'terminal.linked',
      linked: w.linked,
      name: w.linked ? t.name : '',
      pairingCode: w.pairingCode,
      pairingExpiresAt: w.pairingExpiresAt,
    });
  }

  /** The terminal, if it belongs to the caller; otherwise NOT_FOUND, whoever owns it. */
  async ownTerminal(conn: Conn, terminalId: string): Promise<TerminalRow> {
    const t = await this.repo.terminalById(terminalId);
    if (!t || t.customerId !== conn.customerId) {
      throw new RentalError('NOT_FOUND', 'no such terminal on your account');
    }
    return t;
  }

  view(t: TerminalRow): TerminalView {
    return {
      terminalId: t.id,
      name: t.name,
      kind: t.kind,
      online: this.hub.isOnline(t.id) || t.online,
      linkedAt: t.linkedAt,
      lastSeenAt: t.lastSeenAt,
    };
  }

  private async viewOf(terminalId: string): Promise<TerminalView> {
    return this.view((await this.repo.terminalById(terminalId)) as TerminalRow);
  }

  private pushToOwner(customerId: string, terminal: TerminalView) {
    for (const c of this.hub.customerConns(customerId)) c.send({ type: 'terminal.update', terminal });
  }

  private async welcome(terminalId: string, fresh = false): Promise<TerminalWelcome> {
    const t = (await this.repo.terminalById(terminalId)) as TerminalRow;
    const base = { terminalId, contentUrls: this.contentUrls() };
    if (t.customerId) return { ...base, linked: true, pairingCode: null, pairingExpiresAt: null };
    const now = Date.now();
    let code = fresh ? undefined : await this.repo.pairingCodeOf(terminalId, now);
    if (!code) {
      const raw = Array.from({ length: 8 }, () => CODE_ALPHABET[randomInt(CODE_ALPHABET.length)]).join('');
      code = { code: raw, expiresAt: now + this.pairingCodeTtlMs };
      await this.repo.setPairingCode(terminalId, raw, code.expiresAt);
    }
    return {
      ...base,
      linked: false,
      pairingCode: formatPairingCode(code.code),
      pairingExpiresAt: code.expiresAt,
    };
  }
}
