/** Command-line parsing shared by every entry point: strict, with one clear message per mistake. */
import { type ParseArgsConfig, parseArgs } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseCli(
  argv: string[],
  options: NonNullable<ParseArgsConfig['options']>,
  allowPositionals = false,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return {
      values: r.values as Record<string, string | boolean | string[] | undefined>,
      positionals: r.positionals,
    };
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

export function intArg(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^-?\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `--${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`,
    );
  }
  return n;
}

export function requireArg(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`--${name} is required`);
  return value;
}

export function wsUrlArg(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  try {
    const u = new URL(String(value));
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error();
    return u.toString();
  } catch {
    throw new UsageError(`--${name} must be a ws:// or wss:// URL (got ${JSON.stringify(value)})`);
  }
}

/** What a usage mistake prints: the error, then how the command is used. */
const usageText = (err: UsageError, usage: string) => `error: ${err.message}\n\n${usage}\n`;

/**
 * Arguments parsed at a module's top level (its other code reads them as constants), before runCli
 * can catch a mistake: a UsageError prints as runCli prints it and exits 2.
 */
export function argsOrExit<T>(parse: () => T, usage: string): T {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(usageText(err, usage));
    process.exit(2);
  }
}

/** Run a CLI main: usage errors print a message and exit 2, other failures exit 1. */
export function runCli(main: () => Promise<number | undefined>, usage: string): void {
  main().then(
    (code) => {
      if (code !== undefined) process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(usageText(err, usage));
        process.exitCode = 2;
      } else {
        process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    },
  );
}

/** A one-line progress bar that redraws in place on a terminal and prints sparse lines otherwise. */
export function progressLine(label: string) {
  let lastPct = -1;
  const tty = process.stderr.isTTY;
  return (done: number, total: number) => {
    const pct = total ? Math.floor((done / total) * 100) : 100;
    // On a terminal redraw every percent; in a log, one line per tenth.
    const step = tty ? pct : Math.floor(pct / 10);
    const lastStep = tty ? lastPct : Math.floor(lastPct / 10);
    if (lastPct >= 0 && step === lastStep && pct !== 100) return;
    if (pct === lastPct) return;
    lastPct = pct;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const mb = (n: number) => (n / 1048576).toFixed(1);
    const line = `${label} ${bar} ${String(pct).padStart(3)}%  ${mb(done)}/${mb(total)} MB`;
    process.stderr.write(tty ? `\r${line}${pct === 100 ? '\n' : ''}` : `${line}\n`);
  };
}
