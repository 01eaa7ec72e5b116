/**
 * A benchmark helper process: runs N headless terminal cores (the player's core) against a server
 * and reports what happens as JSON lines on stdout. Commands arrive as JSON lines on stdin:
 *   {"cmd":"decrypt","i":0,"orderId":"…"}   decrypt a rental with a no-op sink, report MB/s
 *   {"cmd":"rss"}                            report this process's RSS
 *   {"cmd":"wipe","i":0,"orderId":"…"}      delete a stored rental (its file and its memory go)
 * With --first-frame, each licence immediately starts a decrypt and reports when the first chunk is ready.
 * With --only welcome,licence, only those kinds of events are reported (errors and answers to commands always).
 * A command that fails is reported as an error and ends the farm (exit 1): the run is broken.
 */

import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TerminalCore } from '../player/core/terminal-core.ts';
import { FileStorage } from '../player/headless/file-storage.ts';
import { installNativeChecks } from '../player/headless/native-checks.ts';
import { terminalSocket } from '../player/headless/terminal-socket.ts';
import { argsOrExit, intArg, parseCli, requireArg } from '../server/cli-args.ts';
import { cryptoReady } from '../shared/crypto.ts';

const USAGE =
  'usage: tsx bench/terminal-farm.ts --server WS_URL --dir DIR [--count N] [--first-frame] [--only EVENT,…]';
const { values, server, count, dir } = argsOrExit(() => {
  const { values } = parseCli(process.argv.slice(2), {
    server: { type: 'string' },
    count: { type: 'string' },
    dir: { type: 'string' },
    'first-frame': { type: 'boolean' },
    only: { type: 'string' },
  });
  return {
    values,
    server: requireArg(values.server, 'server'),
    count: intArg(values.count, 'count', 1, 20_000) ?? 1,
    dir: requireArg(values.dir, 'dir'),
  };
}, USAGE);
// --only welcome,licence: report just these kinds of events (errors and answers to commands, always).
const only =
  typeof values.only === 'string'
    ? new Set([...values.only.split(','), 'error', 'rss', 'wiped', 'decrypted'])
    : undefined;
/**
 * Lines gathered for REPORT_MS go out in one write: a busy farm reports a thousand events a second,
 * and each write woke the bench process, on the cores the measure runs on. Every event carries the
 * time it happened (`at`), so the wait does not show in any measure.
 */
const REPORT_MS = 20;
let pending = '';
const out = (o: Record<string, unknown>) => {
  if (only && !only.has(o.t as string)) return;
  if (pending === '') setTimeout(flushOut, REPORT_MS);
  pending += `${JSON.stringify(o)}\n`;
};
const flushOut = () => {
  process.stdout.write(pending);
  pending = '';
};

process.once('SIGTERM', () => process.exit(0));
await cryptoReady();
// Headless terminals, as the CLI runs them: native per-order checks; decryption stays WASM.
installNativeChecks();
const cores: TerminalCore[] = [];
const storages: FileStorage[] = [];
for (let i = 0; i < count; i++) {
  const storage = new FileStorage(join(dir, String(i)));
  storages.push(storage);
  const core: TerminalCore = new TerminalCore({
    serverUrl: server,
    storage,
    socketFactory: terminalSocket,
    kind: 'headless',
    name: `bench ${i}`,
    onEvent: (e) => {
      const at = Date.now();
      if (e.type === 'welcome') out({ t: 'welcome', i, terminalId: e.terminalId, code: e.pairingCode });
      else if (e.type === 'stored') out({ t: 'stored', i, orderId: e.orderId, at });
      else if (e.type === 'offer') out({ t: 'offer', i, orderId: e.rental.orderId, at });
      else if (e.type === 'licence') {
        out({ t: 'licence', i, orderId: e.orderId, at });
        if (values['first-frame']) {
          const ctrl = new AbortController();
          const start = performance.now();
          void core
            .decrypt(
              e.orderId,
              () => {
                if (!ctrl.signal.aborted)
                  out({ t: 'first-frame', i, orderId: e.orderId, ms: performance.now() - start });
                ctrl.abort();
              },
              ctrl.signal,
              { reuse: true },
            )
            .catch((err) => out({ t: 'error', i, message: String(err) }));
        }
      } else if (e.type === 'rejected' || e.type === 'server-error')
        out({ t: 'error', i, message: JSON.stringify(e) });
    },
  });
  cores.push(core);
  await core.start();
  // Pace connection setup so thousands of terminals do not all handshake in the same millisecond.
  if (i % 200 === 199) await new Promise((r) => setTimeout(r, 50));
}

/** Run one command; a failed one ends the farm with its reason (the run is broken, and the bench says so). */
async function run(cmd: { cmd: string; i?: number; orderId?: string }): Promise<void> {
  if (cmd.cmd === 'rss') out({ t: 'rss', mb: process.memoryUsage().rss / 1048576 });
  if (cmd.cmd === 'wipe') {
    await (storages[cmd.i ?? 0] as FileStorage).wipe(cmd.orderId as string);
    out({ t: 'wiped', orderId: cmd.orderId });
  }
  if (cmd.cmd === 'decrypt') {
    const core = cores[cmd.i ?? 0] as TerminalCore;
    let bytes = 0;
    const start = performance.now();
    // As the player's media feed decrypts (one buffer for every chunk; see feedVideo).
    await core.decrypt(
      cmd.orderId as string,
      (p) => {
        bytes += p.length;
      },
      undefined,
      { reuse: true },
    );
    out({ t: 'decrypted', bytes, ms: performance.now() - start });
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as { cmd: string; i?: number; orderId?: string };
  try {
    await run(cmd);
  } catch (err) {
    out({
      t: 'error',
      i: cmd.i ?? -1,
      message: `${cmd.cmd} of ${cmd.orderId ?? '-'} failed: ${String(err)}`,
    });
    flushOut();
    process.exit(1);
  }
}
