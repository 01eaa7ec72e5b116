/**
 * Server-side chunk encryption with sodium-native (about 4x libsodium-wrappers' WASM here). It writes
 * the exact byte format of `shared/crypto.ts` (header, then secretstream ciphertext, order/index/count
 * as additional data, TAG_FINAL on the last chunk) straight into the outgoing frame, so a chunk is
 * read once, encrypted once and sent without further copies. Falls back to the shared WASM code when
 * the native addon cannot load.
 */
import { CHUNK_ABYTES, CHUNK_HEADER_BYTES, chunkAd, encryptChunk } from '../../shared/crypto.ts';
import { CHUNK_FRAME_HEADER, encodeChunkFrame } from '../../shared/protocol.ts';
import { frameHeadBytes, writeFrameHead } from '../../shared/websocket-frame.ts';
import { loadNative } from '../native-sodium.ts';
import { fillRandom } from '../random-pool.ts';

export const usingNativeCrypto = () => loadNative() !== null;

/**
 * Buffers of one size, used again once nothing reads them: a delivery's full blocks of chunk
 * messages once the socket has taken them (a fresh 64 KiB buffer per chunk was a tenth of the
 * server's time in a delivery, in allocation and garbage collection), and its full read-ahead
 * blocks. Bounded: beyond `max` idle buffers, returned ones are left to the collector.
 */
export class FramePool {
  private readonly free: Buffer[] = [];
  constructor(
    readonly frameBytes: number,
    private readonly max: number,
  ) {}
  take(bytes: number): Buffer {
    return (bytes === this.frameBytes && this.free.pop()) || Buffer.allocUnsafe(bytes);
  }
  /** Only once nothing reads `frame` any more (the socket's write of it has completed). */
  give(frame: Uint8Array): void {
    if (Buffer.isBuffer(frame) && frame.length === this.frameBytes && this.free.length < this.max)
      this.free.push(frame);
  }
  get idle(): number {
    return this.free.length;
  }
}

/** The frame size of a full chunk of `chunkSize` plaintext bytes. */
export const chunkFrameBytes = (chunkSize: number) =>
  CHUNK_FRAME_HEADER + CHUNK_HEADER_BYTES + chunkSize + CHUNK_ABYTES;

// The encryption state, reused by every chunk (each is encrypted at once, on this one thread).
let state: Buffer | undefined;

// The frame head (magic, version, order id) and the additional data's start (format, order id) of
// the order last encrypted: deliveries send a block of chunks per turn, so it is the same order
// seven times out of eight.
let headOrder = '';
let head: Uint8Array = new Uint8Array(0);
let adStart = 0;
// The additional data of the chunk being encrypted, built in place: `chunkAd`'s bytes, without two
// new buffers per chunk.
const ad = Buffer.alloc(256);

/** Bytes a chunk of `plainBytes` takes on the wire as one WebSocket message: its head, then its frame. */
export function chunkMessageBytes(plainBytes: number): number {
  const frame = chunkFrameBytes(plainBytes);
  return frameHeadBytes(frame, false) + frame;
}

/** A complete binary frame for chunk `index` of an order: frame header, chunk header, ciphertext. */
export function encryptChunkFrame(
  key: Uint8Array,
  plain: Uint8Array,
  orderId: string,
  index: number,
  total: number,
): Buffer {
  const frame = Buffer.allocUnsafe(chunkFrameBytes(plain.length));
  writeChunkFrame(frame, key, plain, orderId, index, total);
  return frame;
}

/**
 * Chunk `index` as a whole WebSocket binary message (server to client, so unmasked), written at
 * `at` in `out`: the delivery encrypts a block of chunks into one buffer and hands it to the socket
 * in one write. Returns the bytes written (`chunkMessageBytes(plain.length)`).
 */
export function writeChunkMessage(
  out: Buffer,
  at: number,
  key: Uint8Array,
  plain: Uint8Array,
  orderId: string,
  index: number,
  total: number,
): number {
  const frameBytes = chunkFrameBytes(plain.length);
  const head = writeFrameHead(out, at, 2, frameBytes, false);
  writeChunkFrame(out.subarray(at + head, at + head + frameBytes), key, plain, orderId, index, total);
  return head + frameBytes;
}

/** Fills `frame` (exactly `chunkFrameBytes(plain.length)` long) with chunk `index`'s frame. */
function writeChunkFrame(
  frame: Buffer,
  key: Uint8Array,
  plain: Uint8Array,
  orderId: string,
  index: number,
  total: number,
): void {
  const sn = loadNative();
  if (!sn) {
    frame.set(encodeChunkFrame(orderId, index, encryptChunk(key, plain, orderId, index, total)));
    return;
  }
  if (headOrder !== orderId) {
    // Through the shared encoders (on an empty body; chunk 0 of 0), so each layout has one definition.
    head = encodeChunkFrame(orderId, 0, new Uint8Array(0)).subarray(0, CHUNK_FRAME_HEADER - 4);
    const whole = chunkAd(orderId, 0, 0);
    adStart = whole.length - 3; // without "0\n0"
    ad.set(whole.subarray(0, adStart));
    headOrder = orderId;
  }
  const adBytes = adStart + ad.write(`${index}\n${total}`, adStart, 'latin1');
  frame.set(head, 0);
  frame.writeUInt32BE(index, CHUNK_FRAME_HEADER - 4);
  state ??= Buffer.allocUnsafe(sn.crypto_secretstream_xchacha20poly1305_STATEBYTES);
  const header = frame.subarray(CHUNK_FRAME_HEADER, CHUNK_FRAME_HEADER + CHUNK_HEADER_BYTES);
  // The chunk's header (secretstream's random 24-byte nonce) comes from the server's random pool:
  // init_push draws its own from the kernel, a system call per 64 KiB chunk (7 % of the server's
  // event loop in a delivery here). init_pull on a header drawn by us sets exactly the state
  // init_push would (libsodium's two functions differ only in where the header comes from).
  fillRandom(header);
  sn.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key);
  // sodium-native wants the tag as a number; passing a Buffer fails silently.
  const tag =
    index === total - 1
      ? sn.crypto_secretstream_xchacha20poly1305_TAG_FINAL
      : sn.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
  sn.crypto_secretstream_xchacha20poly1305_push(
    state,
    frame.subarray(CHUNK_FRAME_HEADER + CHUNK_HEADER_BYTES),
    plain,
    ad.subarray(0, adBytes),
    tag,
  );
}
