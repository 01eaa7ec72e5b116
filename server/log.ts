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
  process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), level, event, ...safe })}\n`);
}
