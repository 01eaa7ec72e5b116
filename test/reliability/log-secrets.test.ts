/**
 * No secret reaches the logs: a full run of the real server process (sign-up, failed and good
 * sign-ins, pairing, a rental, errors), then its whole output is searched for every secret involved.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { SqliteRepository } from '../../server/store/sqlite.ts';
import { cryptoReady, fromB64, secretboxOpen, toB64 } from '../../shared/crypto.ts';
import { RentalClient } from '../../shared/rental-client.ts';
import { cleanup, defer, rentNow, socket, tempDir, terminal } from '../harness.ts';
import { freePort, spawnServer } from './server-process.ts';

afterEach(cleanup);

test('the server log of a full run contains no password, token, pairing code or key', async () => {
  await cryptoReady();
  const dataDir = tempDir();
  const server = await spawnServer(dataDir, await freePort(), ['--min-rental-seconds', '1']);
  defer(() => server.kill());
  const password = 'my very secret password 42';
  const c = new RentalClient(server.wsUrl, socket);
  await c.connect();
  defer(() => c.close());
  const { token } = await c.request('auth.register', { email: 'secret@example.com', password, name: 'S' });
  await c
    .request('auth.login', { email: 'secret@example.com', password: `${password}x` })
    .catch(() => undefined);
  const termDir = tempDir('rd-term-');
  const t = await terminal(server, { dir: termDir });
  const code = t.core.pairingCode as string;
  await c.request('terminal.link', { code: `${code.slice(0, 4)}-ZZZZ`, name: 'X' }).catch(() => undefined);
  await c.request('terminal.link', { code, name: 'TV' });
  const order = await rentNow(c, t.core.terminalId, 101, 2);
  await t.log.waitFor('licence');
  const repo = new SqliteRepository(join(dataDir, 'rental.sqlite'));
  const row = await repo.orderById(order.orderId);
  await repo.close();
  const keys = JSON.parse(readFileSync(join(dataDir, 'server-keys.json'), 'utf8')) as Record<string, string>;
  const contentKey = toB64(secretboxOpen(row?.wrappedKey as Uint8Array, fromB64(keys.storageKey as string)));
  const terminalSecret = JSON.parse(readFileSync(join(termDir, 'identity.json'), 'utf8'))
    .signSecretKey as string;
  await t.log.waitFor('expired', () => true, 10_000);
  await c.request('auth.logout', {});

  const log = server.output();
  assert.match(log, /order-placed/, 'the log did record the run');
  const secrets: Record<string, string> = {
    password,
    'session token': token,
    'pairing code': code,
    'pairing code (bare)': code.replace('-', ''),
    'content key': contentKey,
    'server signing key': keys.signSecretKey as string,
    'server storage key': keys.storageKey as string,
    'peer key': keys.peerKey as string,
    'terminal secret key': terminalSecret,
  };
  for (const [what, secret] of Object.entries(secrets)) {
    assert.ok(!log.includes(secret), `the log contains the ${what}`);
  }
});
