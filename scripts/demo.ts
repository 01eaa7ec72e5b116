/**
 * `npm run demo`: one whole rental, narrated. A server on a temporary data folder, a headless
 * terminal, a customer who links it and rents a demo title for a short period; the decrypted
 * bytes are checked against the original, then the window closes and decryption is refused.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TerminalCore } from '../player/core/terminal-core.ts';
import { describeEvent } from '../player/headless/cli.ts';
import { FileStorage } from '../player/headless/file-storage.ts';
import { terminalSocket } from '../player/headless/terminal-socket.ts';
import { startServer } from '../server/app.ts';
import { intArg, parseCli, runCli } from '../server/cli-args.ts';
import { setQuietLogs } from '../server/log.ts';
import { cryptoReady } from '../shared/crypto.ts';
import { RentalClient } from '../shared/rental-client.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: npm run demo -- [--period SECONDS (5-300, default 20)] [--item N (default 102)]';
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
let stepNo = 0;
const step = (text: string) => process.stdout.write(`\n${++stepNo}. ${text}\n`);
const say = (text: string) => process.stdout.write(`   ${text}\n`);

function runTerminalCli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'player/headless/cli.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
  });
}

async function main(): Promise<number> {
  const { values } = parseCli(process.argv.slice(2), {
    period: { type: 'string' },
    item: { type: 'string' },
  });
  const period = intArg(values.period, 'period', 5, 300) ?? 20;
  const itemNumber = intArg(values.item, 'item', 101, 103) ?? 102;
  await cryptoReady();
  setQuietLogs(true);
  const work = mkdtempSync(join(tmpdir(), 'rental-demo-'));
  const cleanups: (() => unknown)[] = [() => rmSync(work, { recursive: true, force: true })];
  try {
    step('Starting the server (key server + content store) on a temporary data folder');
    const server = await startServer({ dataDir: join(work, 'server'), port: 0, minRentalSeconds: 5 });
    cleanups.unshift(() => server.close());
    say(
      `listening on ${server.url}; demo catalog loaded: ${(await server.repo.catalog()).map((i) => i.title).join(', ')}`,
    );

    step('Starting a headless terminal; it creates its identity and registers');
    const termDir = join(work, 'terminal');
    const progress = new Map<string, (d: number, t: number) => void>();
    let onEvent: (e: Parameters<typeof describeEvent>[0]) => void = () => {};
    const events: Parameters<typeof describeEvent>[0][] = [];
    const core = new TerminalCore({
      serverUrl: server.wsUrl,
      storage: new FileStorage(termDir),
      socketFactory: terminalSocket,
      kind: 'headless',
      name: 'Demo set-top box',
      onEvent: (e) => {
        events.push(e);
        const line = describeEvent(e, progress);
        if (line && e.type !== 'welcome') say(line);
        onEvent(e);
      },
    });
    const until = <T extends Parameters<typeof describeEvent>[0]['type']>(
      type: T,
      pred: (e: never) => boolean = () => true,
    ) =>
      new Promise<void>((ok, fail) => {
        const timer = setTimeout(() => fail(new Error(`timed out waiting for ${type}`)), 60_000);
        const check = (e: Parameters<typeof describeEvent>[0]) => {
          if (e.type === type && pred(e as never)) {
            clearTimeout(timer);
            ok();
          }
        };
        events.forEach(check);
        const prev = onEvent;
        onEvent = (e) => {
          prev(e);
          check(e);
        };
      });
    await core.start();
    cleanups.unshift(() => core.stop());
    await until('welcome');
    say(`terminal address ${core.terminalId}, pairing code ${core.pairingCode}`);

    step('A customer signs up in the store');
    const customer = new RentalClient(server.wsUrl, terminalSocket);
    await customer.connect();
    cleanups.unshift(() => customer.close());
    const auth = await customer.request('auth.register', {
      email: 'demo@example.com',
      password: 'a demo password',
      name: 'Demo Customer',
    });
    say(`signed in as ${auth.customer.email}`);

    step(`The customer links the terminal by typing its code ${core.pairingCode}`);
    const linkedEvent = until('linked');
    const { terminal } = await customer.request('terminal.link', {
      code: core.pairingCode as string,
      name: 'Living room box',
    });
    await linkedEvent;
    say(`"${terminal.name}" is ${terminal.online ? 'online' : 'offline'}`);

    const item = await server.repo.catalogItem(itemNumber);
    if (!item) throw new Error(`item ${itemNumber} missing from the demo catalog`);
    step(`Ordering "${item.title}" (item ${itemNumber}) for a ${period} s rental, delivered now`);
    const { order } = await customer.request('order.place', {
      itemNumber,
      terminalId: core.terminalId,
      periodSeconds: period,
      schedule: { mode: 'now' },
    });
    say(
      `order ${order.orderId}: window ${new Date(order.notBefore).toLocaleTimeString()} to ${new Date(order.notAfter).toLocaleTimeString()}`,
    );
    say('the server made a key for this order only and is encrypting the title for it');

    step('Delivery: encrypted chunks stream to the terminal, and the key (licence) is pushed');
    const open = new Promise<string>((ok) => {
      customer.on('order.update', (m) => {
        if (m.order.orderId === order.orderId && m.order.status === 'window-open') {
          ok(`${m.order.status} (${m.order.chunksDelivered}/${m.order.totalChunks} chunks delivered)`);
        }
      });
    });
    await Promise.all([
      until('stored', (e: { orderId: string }) => e.orderId === order.orderId),
      until('licence'),
    ]);
    say(`the store shows: ${await open}`);

    step('Playing inside the window: decrypting with the terminal CLI (npm run terminal -- play)');
    const out = join(work, 'decrypted.webm');
    const play = runTerminalCli(['play', order.orderId, '--out', out, '--data', termDir]);
    if (play.status !== 0) throw new Error(`play failed: ${play.stderr}`);
    const original = sha256(readFileSync(server.media.path(item.mediaFile)));
    const decrypted = sha256(readFileSync(out));
    say(`original  sha256 ${original}`);
    say(`decrypted sha256 ${decrypted}`);
    if (original !== decrypted) throw new Error('decrypted bytes differ from the original');
    say('identical: the terminal played exactly the title, which never travelled in the clear');
    rmSync(out);

    step('Waiting for the rental period to end');
    for (;;) {
      const left = Math.ceil((order.notAfter - Date.now()) / 1000);
      if (left <= 0) break;
      say(`${left} s left`);
      await new Promise((r) => setTimeout(r, Math.min(5000, left * 1000)));
    }
    await until('expired');

    step('After the window: decryption is refused');
    const refused = runTerminalCli(['play', order.orderId, '--out', out, '--data', termDir]);
    say(`terminal CLI: ${refused.stderr.trim()} (exit ${refused.status})`);
    if (refused.status === 0) throw new Error('decryption after the window should have been refused');
    const final = (await customer.request('order.list', {})).orders[0];
    say(`the store shows: ${final?.status}`);
    process.stdout.write(
      '\nDemo complete: ordered, delivered encrypted, played in the window, refused after it.\n',
    );
    return 0;
  } finally {
    for (const c of cleanups) await c();
  }
}

runCli(main, USAGE);
