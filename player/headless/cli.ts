/**
 * The headless terminal: `run` registers and stays connected, printing its pairing code and each
 * delivery; `list` shows what is stored; `play` decrypts a rental (inside its window only) to a
 * file or stdout so any media player can play it.
 */
import { createWriteStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseCli, progressLine, requireArg, runCli, UsageError, wsUrlArg } from '../../server/cli-args.ts';
import { cryptoReady } from '../../shared/crypto.ts';
import { TerminalCore, TerminalError, type TerminalEvent } from '../core/terminal-core.ts';
import { FileStorage } from './file-storage.ts';
import { installNativeChecks } from './native-checks.ts';
import { terminalSocket } from './terminal-socket.ts';

export const TERMINAL_USAGE = `usage: npm run terminal -- <command> [options]
  run  --server URL [--data DIR] [--name NAME]   register, show the pairing code, receive rentals
  list [--data DIR]                               rentals stored on this terminal
  play ORDER_ID --out FILE|- [--preroll FILE] [--data DIR]
                                                  decrypt a rental inside its window (and save the
                                                  ad that plays before it)
options:
  --data DIR    terminal folder (default ./terminal-data)
  --server URL  the server's WebSocket address, e.g. ws://127.0.0.1:8080/ws`;

export function describeEvent(
  e: TerminalEvent,
  progress: Map<string, (d: number, t: number) => void>,
): string | undefined {
  switch (e.type) {
    case 'welcome':
      return e.linked
        ? `terminal ${e.terminalId} is linked and ready`
        : `terminal ${e.terminalId} is not linked yet.\n\n    Pairing code:  ${e.pairingCode}\n\n  Enter it in the store app under Terminals > Link a terminal (valid until ${new Date(e.pairingExpiresAt ?? 0).toLocaleTimeString()}).`;
    case 'linked':
      return e.linked ? `linked to an account as "${e.name}"` : `unlinked; new pairing code ${e.pairingCode}`;
    case 'disconnected':
      return `connection lost; retrying in ${(e.retryInMs / 1000).toFixed(1)} s`;
    case 'offer':
      progress.set(e.rental.orderId, progressLine(`  receiving "${e.rental.title}"`));
      return `delivery of "${e.rental.title}" (order ${e.rental.orderId}) started`;
    case 'progress': {
      // The end of the id: its start is the time it was made (UUID v7), the same for a minute of orders.
      const bar = progress.get(e.orderId) ?? progressLine(`  receiving order …${e.orderId.slice(-8)}`);
      progress.set(e.orderId, bar);
      bar(e.bytes, e.size);
      return undefined;
    }
    case 'stored':
      return `order ${e.orderId}: all content stored (encrypted)`;
    case 'licence':
      return `order ${e.orderId}: key received; playable ${new Date(e.notBefore).toLocaleString()} to ${new Date(e.notAfter).toLocaleString()}`;
    case 'expired':
      return `order ${e.orderId}: rental period over; key and content wiped`;
    case 'rejected':
      return `order ${e.orderId}: refused (${e.reason})`;
    case 'server-error':
      return `server error ${e.code}: ${e.message}`;
    case 'ad':
      return `ad: ${e.text} (${e.creativeUrl})`;
    case 'preroll':
      return `order ${e.orderId}: pre-roll received ("${e.text}"), plays before the film`;
    case 'local-error':
      return `error on this terminal: ${e.message}`;
    default:
      return undefined;
  }
}

async function main(argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h') {
    process.stdout.write(`${TERMINAL_USAGE}\n`);
    return command ? 0 : 2;
  }
  await cryptoReady();
  installNativeChecks();
  if (command === 'run') {
    const { values } = parseCli(rest, {
      server: { type: 'string' },
      data: { type: 'string', default: './terminal-data' },
      name: { type: 'string', default: `Headless terminal on ${hostname()}`.slice(0, 64) },
    });
    const serverUrl = wsUrlArg(requireArg(values.server, 'server'), 'server') as string;
    const progress = new Map<string, (d: number, t: number) => void>();
    const core = new TerminalCore({
      serverUrl,
      storage: new FileStorage(values.data as string),
      socketFactory: terminalSocket,
      kind: 'headless',
      name: values.name as string,
      onEvent: (e) => {
        const line = describeEvent(e, progress);
        if (line) process.stdout.write(`${line}\n`);
      },
    });
    await core.start();
    process.stdout.write(`terminal ${core.terminalId} connecting to ${serverUrl}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await core.stop();
    return 0;
  }
  if (command === 'list') {
    const { values } = parseCli(rest, { data: { type: 'string', default: './terminal-data' } });
    const core = new TerminalCore({
      serverUrl: 'ws://unused',
      storage: new FileStorage(values.data as string),
      socketFactory: terminalSocket,
      kind: 'headless',
      name: 'list',
    });
    await core.init();
    const rentals = await core.rentals();
    if (rentals.length === 0) process.stdout.write('no rentals on this terminal\n');
    for (const r of rentals) {
      const lic = r.expired ? undefined : await core.licenceOf(r.orderId).catch(() => undefined);
      const state = r.expired
        ? 'expired'
        : r.have < r.totalChunks
          ? `downloading ${Math.floor((r.have / r.totalChunks) * 100)}%`
          : lic
            ? `ready until ${new Date(lic.notAfter).toLocaleString()}`
            : 'waiting for key';
      process.stdout.write(`${r.orderId}  ${r.title.padEnd(28)}  ${state}\n`);
    }
    return 0;
  }
  if (command === 'play') {
    const { values, positionals } = parseCli(
      rest,
      {
        data: { type: 'string', default: './terminal-data' },
        out: { type: 'string' },
        preroll: { type: 'string' },
      },
      true,
    );
    const orderId = positionals[0];
    if (!orderId || positionals.length > 1) throw new UsageError('play needs exactly one ORDER_ID');
    if (!/^[0-9a-f-]{36}$/.test(orderId))
      throw new UsageError(`${JSON.stringify(orderId)} is not an order id`);
    const out = requireArg(values.out, 'out');
    const core = new TerminalCore({
      serverUrl: 'ws://unused',
      storage: new FileStorage(values.data as string),
      socketFactory: terminalSocket,
      kind: 'headless',
      name: 'play',
    });
    await core.init();
    // The ad that came with the film goes first: to its own file, for the media player to play
    // before the title (this command cannot show it, so it is not counted as seen).
    try {
      const preroll = await core.pendingPreroll(orderId);
      if (preroll && typeof values.preroll === 'string') {
        await writeFile(values.preroll, preroll.creative, { mode: 0o600 });
        process.stderr.write(
          `pre-roll "${preroll.text}" (${preroll.mimeType}) written to ${values.preroll}: play it first\n`,
        );
      } else if (preroll) {
        process.stderr.write(
          `note: this film comes with a pre-roll ("${preroll.text}"); --preroll FILE saves it to play first\n`,
        );
      }
    } catch (err) {
      if (!(err instanceof TerminalError)) throw err;
      process.stderr.write(`cannot play: ${err.message} (${err.code})\n`);
      return 3;
    }
    const sink = out === '-' ? process.stdout : createWriteStream(out, { mode: 0o600 });
    try {
      await core.decrypt(orderId, (plain) => {
        if (!sink.write(plain)) return new Promise<void>((r) => sink.once('drain', () => r()));
      });
    } catch (err) {
      if (err instanceof TerminalError) {
        process.stderr.write(`cannot play: ${err.message} (${err.code})\n`);
        if (sink !== process.stdout) {
          sink.destroy();
          await rm(out, { force: true }); // never leave a partial clear copy behind
        }
        return 3;
      }
      throw err;
    }
    if (sink !== process.stdout) await new Promise<void>((r) => sink.end(() => r()));
    if (out !== '-') process.stderr.write(`decrypted to ${out}\n`);
    return 0;
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)}`);
}

/** The command line, run: by `npm run terminal` (this file) and by the installed `rental-terminal`. */
export const runTerminalCli = () => runCli(() => main(process.argv.slice(2)), TERMINAL_USAGE);

if (import.meta.url === `file://${process.argv[1]}`) runTerminalCli();
