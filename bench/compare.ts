/**
 * Two revisions of the code, measured in alternating runs of the benchmark on this machine.
 *
 *   npx tsx bench/compare.ts --base main~1 [--head HEAD] [--rounds 3] [--only orders]
 *
 * This host's speed drifts by more than most changes move a figure, so one run of each proves
 * nothing: each round runs both revisions, in turn (base first in odd rounds, head first in even
 * ones), and the table gives every run's figure beside the means. Each revision is checked out in a
 * temporary git worktree that borrows this checkout's node_modules, so both must have the same
 * package-lock.json. The figures are also written to bench/compare.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intArg, parseCli, requireArg, runCli, UsageError } from '../server/cli-args.ts';
import { MEASURES, onlyArg } from './bench-args.ts';

const USAGE = `usage: npx tsx bench/compare.ts --base REV [--head REV] [--rounds 1-20] [--only ${MEASURES.join(',')}]`;
const root = join(import.meta.dirname, '..');

type Figures = Record<string, number>;

/** The commit a revision names, or a UsageError saying it names none. */
function commitOf(rev: string, name: string): string {
  try {
    return execFileSync('git', ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
  } catch {
    throw new UsageError(`--${name} ${JSON.stringify(rev)} is not a commit of this repository`);
  }
}

/** The numeric figures every run has, with each run's value and the mean per side. */
export function compareTable(base: Figures[], head: Figures[]): string[][] {
  const all = [...base, ...head];
  const keys = Object.keys(all[0] ?? {})
    .filter((k) => all.every((r) => typeof r[k] === 'number' && Number.isFinite(r[k])))
    .sort();
  const mean = (runs: Figures[], k: string) => runs.reduce((n, r) => n + (r[k] as number), 0) / runs.length;
  const show = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  return keys.map((k) => {
    const b = mean(base, k);
    const h = mean(head, k);
    return [
      k,
      `${show(b)} (${base.map((r) => show(r[k] as number)).join(', ')})`,
      `${show(h)} (${head.map((r) => show(r[k] as number)).join(', ')})`,
      b === 0 ? '' : (h / b).toFixed(2),
    ];
  });
}

/** One benchmark run in `dir`, its output passed through; resolves with its bench/results.json. */
function benchIn(dir: string, args: string[]): Promise<Figures> {
  return new Promise((resolve, reject) => {
    rmSync(join(dir, 'bench', 'results.json'), { force: true });
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const file = join(dir, 'bench', 'results.json');
      if (code !== 0 || !existsSync(file))
        return reject(new Error(`the benchmark in ${dir} exited with ${code}`));
      resolve(JSON.parse(readFileSync(file, 'utf8')) as Figures);
    });
  });
}

async function main(): Promise<number> {
  const { values } = parseCli(process.argv.slice(2), {
    base: { type: 'string' },
    head: { type: 'string' },
    rounds: { type: 'string' },
    only: { type: 'string' },
  });
  const base = commitOf(requireArg(values.base, 'base'), 'base');
  const head = commitOf(typeof values.head === 'string' ? values.head : 'HEAD', 'head');
  const rounds = intArg(values.rounds, 'rounds', 1, 20) ?? 3;
  const only = onlyArg(values.only);
  const lock = (rev: string) =>
    execFileSync('git', ['show', `${rev}:package-lock.json`], { cwd: root, encoding: 'utf8' });
  if (lock(base) !== lock(head) || lock(head) !== readFileSync(join(root, 'package-lock.json'), 'utf8'))
    throw new UsageError('the two revisions and this checkout must have the same package-lock.json');

  // Ctrl-C reaches the running benchmark too; it exits, its run fails, and the worktrees go below.
  process.once('SIGINT', () => process.stdout.write('\nstopping…\n'));
  const work = mkdtempSync(join(tmpdir(), 'rental-compare-'));
  const trees = { base: join(work, 'base'), head: join(work, 'head') };
  const runs: Record<'base' | 'head', Figures[]> = { base: [], head: [] };
  try {
    for (const [side, rev] of [
      ['base', base],
      ['head', head],
    ] as const) {
      execFileSync('git', ['worktree', 'add', '--detach', '--quiet', trees[side], rev], { cwd: root });
      symlinkSync(join(root, 'node_modules'), join(trees[side], 'node_modules'), 'dir');
    }
    const args = only ? ['--only', only.join(',')] : [];
    const total = rounds * 2;
    let done = 0;
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? (['base', 'head'] as const) : (['head', 'base'] as const);
      for (const side of order) {
        const started = Date.now();
        const label = `run ${++done}/${total}: round ${round}, ${side} (${(side === 'base' ? base : head).slice(0, 7)})`;
        process.stdout.write(`${label}\n`);
        runs[side].push(await benchIn(trees[side], args));
        process.stdout.write(`${label} done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
      }
    }
  } finally {
    for (const dir of Object.values(trees))
      if (existsSync(dir)) execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: root });
    rmSync(work, { recursive: true, force: true });
  }

  const rows = compareTable(runs.base, runs.head);
  const header = [
    'figure',
    `base ${base.slice(0, 7)}: mean (runs)`,
    `head ${head.slice(0, 7)}: mean (runs)`,
    'head / base',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  process.stdout.write(`\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
  writeFileSync(
    join(import.meta.dirname, 'compare.json'),
    `${JSON.stringify({ base, head, rounds, only: only ?? null, runs }, null, 2)}\n`,
  );
  process.stdout.write('\nwritten to bench/compare.json\n');
  return 0;
}

if (process.argv[1] === import.meta.filename) runCli(main, USAGE);
