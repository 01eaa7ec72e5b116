/**
 * Bytes that terminals in this process have received and not yet written, and the sockets paused
 * because of them. Above `LIMITS.terminalUnwrittenPauseBytes` the socket a chunk arrived on stops
 * being read (TCP then holds the server back); at or below `terminalUnwrittenResumeBytes` every
 * paused socket is read again. One budget per process, not per connection: what the bound protects
 * is the device's memory, however many connections (or, in the benchmark's farm, terminal cores)
 * share it. A browser's WebSocket cannot pause, so there the server's delivery window is the bound.
 */
import { LIMITS } from '../../shared/limits.ts';
import type { SocketLike } from '../../shared/rental-client.ts';

let bytes = 0;
const paused = new Set<SocketLike>();

/** `n` bytes arrived on `ws` and wait to be written. */
export function arrived(ws: SocketLike | undefined, n: number): void {
  bytes += n;
  if (bytes > LIMITS.terminalUnwrittenPauseBytes && ws?.pause && !paused.has(ws)) {
    paused.add(ws);
    ws.pause();
  }
}

/** `n` bytes that had arrived are written, or will never be. */
export function released(n: number): void {
  bytes -= n;
  if (bytes > LIMITS.terminalUnwrittenResumeBytes || paused.size === 0) return;
  const all = [...paused];
  paused.clear();
  for (const ws of all) ws.resume?.();
}

/** A closed socket is no longer anyone's to resume. */
export function forget(ws: SocketLike): void {
  paused.delete(ws);
}

/** Bytes received and not yet written in this process (for tests). */
export const unwrittenBytes = (): number => bytes;
