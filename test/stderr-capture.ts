/** What a piece of code writes to stderr, the server's buffered log lines included. */
import { flushLogs } from '../server/log.ts';

/** Run `fn` with stderr captured: the text written, and in how many writes (log lines flushed at both ends). */
export async function capturedStderr(
  fn: () => Promise<void> | void,
): Promise<{ text: string; writes: number }> {
  flushLogs();
  let text = '';
  let writes = 0;
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    writes++;
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
    flushLogs();
  } finally {
    process.stderr.write = write;
  }
  return { text, writes };
}
