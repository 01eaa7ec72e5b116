/**
 * RFC 6455 frame heads (§5.2), written in place: the headless terminal's socket frames its own
 * messages with them, and the server frames a delivery's chunks in the very buffer it encrypts
 * them into, so a block of chunks leaves in one write without a second pass over it.
 */

/** Bytes of head before a payload of `payloadBytes` (the mask key, 4 more, only from a client). */
export const frameHeadBytes = (payloadBytes: number, masked: boolean): number =>
  (payloadBytes < 126 ? 2 : payloadBytes < 65536 ? 4 : 10) + (masked ? 4 : 0);

/**
 * Writes the head of a final (unfragmented) frame at `at` and returns its length. A masked head
 * leaves its last 4 bytes, the mask key, to the caller. Payloads stay below 4 GiB here: every
 * message the system sends is bounded far below (LIMITS).
 */
export function writeFrameHead(
  out: Uint8Array,
  at: number,
  opcode: number,
  payloadBytes: number,
  masked: boolean,
): number {
  const n = payloadBytes;
  const mask = masked ? 0x80 : 0;
  out[at] = 0x80 | opcode;
  if (n < 126) {
    out[at + 1] = mask | n;
  } else if (n < 65536) {
    out[at + 1] = mask | 126;
    out[at + 2] = n >>> 8;
    out[at + 3] = n & 0xff;
  } else {
    out[at + 1] = mask | 127;
    out.fill(0, at + 2, at + 6);
    out[at + 6] = n >>> 24;
    out[at + 7] = (n >>> 16) & 0xff;
    out[at + 8] = (n >>> 8) & 0xff;
    out[at + 9] = n & 0xff;
  }
  return frameHeadBytes(n, masked);
}
