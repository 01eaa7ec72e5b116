/** Runs the real server as a child process (`server/main.ts`), so tests can kill -9 it and read its logs. */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  output: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * @param logFile where the server's log lines (stderr) go, instead of this process's memory: a
 *   benchmark's server writes thousands a second, and reading them here woke this process for each
 *   write and grew its heap, on the cores the measure runs on. `output()` reads the file back.
 */
export async function spawnServer(
  dataDir: string,
  port: number,
  extra: string[] = [],
  logFile?: string,
): Promise<ServerProcess> {
  const logFd = logFile === undefined ? undefined : openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      // Extra Node flags for the server alone, e.g. RENTAL_SERVER_NODE_ARGS="--cpu-prof" to profile a benchmark.
      ...(process.env.RENTAL_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      'tsx',
      'server/main.ts',
      '--data',
      dataDir,
      '--port',
      String(port),
      '--no-open',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', logFd ?? 'pipe'], env: { ...process.env, DISPLAY: '' } },
  );
  if (logFd !== undefined) closeSync(logFd); // the child has its own
  let out = '';
  const output = () => (logFile === undefined ? out : out + readFileSync(logFile, 'utf8'));
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start:\n${output()}`)), 20_000);
    const check = () => {
      if (out.includes('serving on')) {
        clearTimeout(t);
        // Scanning the whole output on every write cost the benchmarks' clients more than their orders.
        child.stdout?.off('data', check);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => reject(new Error(`server exited ${code}:\n${output()}`)));
  });
  return {
    child,
    url: `http://127.0.0.1:${port}/`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    output,
    kill: (signal = 'SIGKILL') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}
