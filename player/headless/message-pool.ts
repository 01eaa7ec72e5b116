/**
 * Buffers for the binary messages (content chunks) a headless terminal receives, used again once the
 * chunk is written. A new buffer per chunk made V8 count 400 MB/s of new external memory during a
 * delivery, and it answered with a full garbage collection several times a second: marking the whole
 * heap was a third of a terminal's CPU per MiB delivered. One pool per process, like the unwritten
 * budget that bounds how many buffers are out at once.
 */
import { LIMITS } from '../../shared/limits.ts';

/** Sizes are rounded up to this, so a title's chunks (all one size but the last) share one class. */
const SIZE_STEP = 4096;
/** Larger messages are not pooled (chunks are 64 KiB; nothing else binary comes this way). */
const MAX_POOLED_MESSAGE = 1024 * 1024;
/** Bytes kept free in the pool at most: the unwritten budget's pause mark, and some over. */
const MAX_FREE_BYTES = LIMITS.terminalUnwrittenPauseBytes + 8 * 1024 * 1024;

const free = new Map<number, ArrayBuffer[]>();
/** Every buffer the pool made, and whether it is free right now (so a buffer comes back only once). */
const made = new WeakMap<ArrayBuffer, { free: boolean }>();
let freeBytes = 0;
/** Buffers handed out and not yet back (for tests: a chunk path that forgets to hand back shows here). */
let out = 0;

/** A buffer of `length` bytes, with whatever it held before: the caller fills all of it. */
export function takeMessageBuffer(length: number): Uint8Array {
  if (length > MAX_POOLED_MESSAGE) return new Uint8Array(length);
  out++;
  const size = Math.max(SIZE_STEP, Math.ceil(length / SIZE_STEP) * SIZE_STEP);
  const buffer = free.get(size)?.pop();
  if (buffer) {
    freeBytes -= size;
    (made.get(buffer) as { free: boolean }).free = false;
    return new Uint8Array(buffer, 0, length);
  }
  const fresh = new ArrayBuffer(size);
  made.set(fresh, { free: false });
  return new Uint8Array(fresh, 0, length);
}

/**
 * The caller is done with `bytes` (any view of a buffer from takeMessageBuffer) and holds no other
 * view of it. Buffers the pool did not make, and buffers already returned, are left alone.
 */
export function recycleMessageBuffer(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer;
  const state = made.get(buffer);
  if (!state || state.free) return;
  state.free = true;
  out--;
  const size = buffer.byteLength;
  if (freeBytes + size > MAX_FREE_BYTES) return; // not kept: garbage, like any other buffer
  freeBytes += size;
  const list = free.get(size);
  if (list) list.push(buffer);
  else free.set(size, [buffer]);
}

/** Bytes waiting in the pool (for tests). */
export const pooledFreeBytes = (): number => freeBytes;
/** Buffers handed out and not yet back (for tests). */
export const messageBuffersOut = (): number => out;
