/** Customer accounts: sign-up, sign-in (rate-limited), session tokens (hashed at rest, revocable). */
import { createHash, randomUUID } from 'node:crypto';
import { randomBytes, toB64 } from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import type { CustomerView } from '../../shared/protocol.ts';
import type { Conn, ConnectionHub } from '../connection-hub.ts';
import { log } from '../log.ts';
import type { CustomerRow, Repository } from '../store/repository.ts';
import { AttemptLimiter } from './attempt-limiter.ts';
import { decoyHash, hashPassword, verifyPassword } from './passwords.ts';

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

const viewOf = (c: CustomerRow): CustomerView => ({
  customerId: c.id,
  email: c.email,
  name: c.name,
  admin: c.role === 'admin',
});

export class Accounts {
  private readonly logins = new AttemptLimiter(
    LIMITS.loginFailuresPerWindow,
    LIMITS.loginFailureWindowMs,
    'too many failed sign-ins for this e-mail; try again in 15 minutes',
  );

  constructor(
    private readonly hub: ConnectionHub,
    private readonly repo: Repository,
  ) {
    hub.handle('auth.register', async (conn, m) => {
      const row: CustomerRow = {
        id: randomUUID(),
        email: m.email,
        name: m.name,
        passwordHash: await hashPassword(m.password),
        createdAt: Date.now(),
        ageBand: m.ageBand ?? null,
        region: m.region ?? null,
        role: 'customer',
      };
      if (!(await repo.createCustomer(row))) {
        throw new RentalError('EMAIL_TAKEN', 'an account with this e-mail already exists; sign in instead');
      }
      log('info', 'customer-registered', { customerId: row.id });
      return this.startSession(conn, row);
    });

    hub.handle('auth.login', async (conn, m) => {
      this.logins.check(m.email);
      const c = await repo.customerByEmail(m.email);
      const ok = await verifyPassword(c?.passwordHash ?? (await decoyHash()), m.password);
      if (!c || !ok) {
        this.logins.fail(m.email);
        throw new RentalError('BAD_CREDENTIALS', 'wrong e-mail or password');
      }
      this.logins.succeed(m.email);
      return this.startSession(conn, c);
    });

    hub.handle('auth.resume', async (conn, m) => {
      const customerId = await repo.sessionCustomer(hashToken(m.token), Date.now());
      const c = customerId ? await repo.customerById(customerId) : undefined;
      if (!c) throw new RentalError('SESSION_EXPIRED', 'your session has ended; sign in again');
      this.bind(conn, c.id, hashToken(m.token));
      return { token: m.token, customer: viewOf(c) };
    });

    hub.handle('auth.logout', async (conn) => {
      if (conn.tokenHash) await repo.revokeSession(conn.tokenHash, Date.now());
      // Every connection on the revoked token is signed out, not just this one (this one included,
      // so the token is read before the first sign-out clears it).
      const tokenHash = conn.tokenHash;
      for (const other of hub.customerConns(conn.customerId ?? '')) {
        if (other.tokenHash === tokenHash) hub.bindCustomer(other, undefined);
      }
      return {};
    });
  }

  private async startSession(conn: Conn, c: CustomerRow) {
    const token = toB64(randomBytes(32));
    const now = Date.now();
    await this.repo.createSession(hashToken(token), c.id, now, now + LIMITS.sessionTtlMs);
    this.bind(conn, c.id, hashToken(token));
    return { token, customer: viewOf(c) };
  }

  private bind(conn: Conn, customerId: string, tokenHash: string) {
    this.hub.bindCustomer(conn, { customerId, tokenHash });
  }
}
