/**
 * Server-side chunk encryption with sodium-native (about 4x libsodium-wrappers' WASM here). It writes
 * the exact byte format of `shared/crypto.ts` (header, then secretstream ciphertext, order/index/count
 * as additional data, TAG_FINAL on the last chunk) straight into the outgoing frame, so a chunk is
 * read once, encrypted once and sent without further copies. Falls back to the shared WASM code when
 * the native addon cannot load.
 */
import { CHUNK_ABYTES, CHUNK_HEADER_BYTES, chunkAd, encryptChunk } from '../../shared/crypto.ts';
import { CHUNK_FRAME_HEADER, encodeChunkFrame } from '../../shared/protocol.ts';
import { loadNative } from '../native-sodium.ts';

export const usingNativeCrypto = () => loadNative() !== null;

/** A complete binary frame for chunk `index` of an order: frame header, chunk header, ciphertext. */
export function encryptChunkFrame(
  key: Uint8Array,
  plain: Uint8Array,
  orderId: string,
  index: number,
  total: number,
): Uint8Array {
  const sn = loadNative();
  if (!sn) return encodeChunkFrame(orderId, index, encryptChunk(key, plain, orderId, index, total));
  // Build the frame header through the shared encoder (on an empty body), then fill the body in place.
  const head = encodeChunkFrame(orderId, index, new Uint8Array(0));
  const frame = Buffer.allocUnsafe(CHUNK_FRAME_HEADER + CHUNK_HEADER_BYTES + plain.length + CHUNK_ABYTES);
  frame.set(head, 0);
  const state = Buffer.allocUnsafe(sn.crypto_secretstream_xchacha20poly1305_STATEBYTES);
  const header = frame.subarray(CHUNK_FRAME_HEADER, CHUNK_FRAME_HEADER + CHUNK_HEADER_BYTES);
  sn.crypto_secretstream_xchacha20poly1305_init_push(
    state,
    header,
    Buffer.from(key.buffer, key.byteOffset, key.length),
  );
  // sodium-native wants the tag as a number; passing a Buffer fails silently.
  const tag =
    index === total - 1
      ? sn.crypto_secretstream_xchacha20poly1305_TAG_FINAL
      : sn.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
  sn.crypto_secretstream_xchacha20poly1305_push(
    state,
    frame.subarray(CHUNK_FRAME_HEADER + CHUNK_HEADER_BYTES),
    Buffer.from(plain.buffer, plain.byteOffset, plain.length),
    Buffer.from(chunkAd(orderId, index, total)),
    tag,
  );
  return frame;
}
