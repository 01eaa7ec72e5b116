/** The benchmark's measures by name, and `--only` checked against them (run.ts and compare.ts). */
import { UsageError } from '../server/cli-args.ts';

export const MEASURES = ['delivery', 'first-frame', 'parallel', 'orders', 'held', 'stream'] as const;
export type Measure = (typeof MEASURES)[number];

/** `--only a,b`: known measure names, each once; undefined when not given (every measure). */
export function onlyArg(value: unknown): Measure[] | undefined {
  if (value === undefined) return undefined;
  const names = String(value)
    .split(',')
    .map((n) => n.trim());
  const unknown = names.filter((n) => !(MEASURES as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new UsageError(
      `--only takes measures from ${MEASURES.join(', ')}, separated by commas (got ${JSON.stringify(String(value))})`,
    );
  return [...new Set(names)] as Measure[];
}
