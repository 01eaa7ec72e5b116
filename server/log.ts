/**
 * Structured log lines on stderr. Callers pass plain fields; anything that looks like a secret
 * (token, password, key, signature) is dropped here so a careless call site cannot leak it.
 */
const SECRET_FIELD = /token|password|secret|key|sig|mac|code/i;

export type LogLevel = 'info' | 'warn' | 'error';
let quiet = false;
export const setQuietLogs = (q: boolean) => {
  quiet = q;
};

export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  if (quiet && level === 'info') return;
  const safe: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) safe[k] = SECRET_FIELD.test(k) ? '[redacted]' : v;
  lines.push(`${JSON.stringify({ t: new Date().toISOString(), level, event, ...safe })}\n`);
  // Lines of one turn go out in one write (stderr on a pipe is a blocking write per call, several
  // per order on a busy server); a long burst is written as it grows, and nothing waits past exit.
  if (lines.length === 1) setImmediate(flushLogs);
  else if (lines.length >= MAX_BUFFERED_LINES) flushLogs();
}

const MAX_BUFFERED_LINES = 256;
let lines: string[] = [];
export function flushLogs(): void {
  if (lines.length === 0) return;
  const text = lines.join('');
  lines = [];
  process.stderr.write(text);
}
process.on('exit', flushLogs);
