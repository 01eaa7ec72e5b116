/**
 * Random bytes from Node's CSPRNG, drawn 16 KiB at a time and each handed out once (then wiped from
 * the pool). Every randomFillSync call makes a system call (OpenSSL checks the process id: one
 * getpid per call under strace), about 5 µs here whether it fills 10 bytes or 4 KiB, and the server
 * drew randomness four times per order (id, content key, key-wrap nonce) and once per 64 KiB chunk
 * (its secretstream header). sodium-native's randombytes_buf makes a getrandom call each time too.
 */
import { randomFillSync } from 'node:crypto';

const pool = Buffer.allocUnsafeSlow(16 * 1024);
let used = pool.length;

/** Fill `into[offset, offset + length)` with fresh random bytes. */
export function fillRandom(into: Uint8Array, offset = 0, length = into.length - offset): void {
  if (length > pool.length) {
    randomFillSync(into, offset, length);
    return;
  }
  if (used + length > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  into.set(pool.subarray(used, used + length), offset);
  pool.fill(0, used, used + length);
  used += length;
}
