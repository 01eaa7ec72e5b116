/** Rentals and ciphertext chunks for storage tests: any bytes of the right lengths will do. */
import { cipherChunkLength } from '../../shared/crypto.ts';

export const CHUNK_SIZE = 65536;

/** A rental record for a title of `size` bytes in 64 KiB chunks, `have` of them stored. */
export const rentalOf = (orderId: string, size: number, have = 0) => ({
  orderId,
  itemNumber: 1,
  title: 'T',
  mimeType: 'video/webm',
  size,
  chunkSize: CHUNK_SIZE,
  totalChunks: Math.ceil(size / CHUNK_SIZE),
  have,
  notBefore: 0,
  notAfter: Date.now() + 60_000,
  expired: false,
});

/** Stand-ins for a title's ciphertext chunks, each of its length and its own bytes (by `seed` and place). */
export function ciphersOf(size: number, seed: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < size; at += CHUNK_SIZE) {
    const c = new Uint8Array(cipherChunkLength(Math.min(CHUNK_SIZE, size - at)));
    for (let i = 0; i < c.length; i++) c[i] = (i * 31 + seed + (at >> 16) * 7) & 0xff;
    out.push(c);
  }
  return out;
}
