/**
 * Server-side chunk encryption with sodium-native (about 4x libsodium-wrappers' WASM here). It writes
 * the exact byte format of `shared/crypto.ts` (header, then secretstream ciphertext, order/index/count
 * as additional data, TAG_FINAL on the last chunk) straight into the outgoing frame, so a chunk is
 * read once, encrypted once and sent without further copies. Falls back to the shared WASM code when
 * the native addon cannot load.
 */
import {
  CHUNK_ABYTES,
  CHUNK_AD_ROOM,
  CHUNK_HEADER_BYTES,
  chunkAd,
  encryptChunk,
} from '../../shared/crypto.ts';
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
  /** A buffer of the pool's size is a whole ArrayBuffer of its own (a block sealer hands it over). */
  take(bytes: number): Buffer {
    if (bytes !== this.frameBytes) return Buffer.allocUnsafe(bytes);
    return this.free.pop() ?? Buffer.allocUnsafeSlow(bytes);
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
const ad = Buffer.alloc(CHUNK_AD_ROOM);

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
  const message = Buffer.allocUnsafe(chunkMessageBytes(plain.length));
  writeChunkMessage(message, 0, key, plain, orderId, index, total);
  return message.subarray(frameHeadBytes(chunkFrameBytes(plain.length), false));
}

// One chunk's layout, for chunks encrypted one at a time on this thread.
let oneFields: Int32Array | undefined;
let oneAd: Buffer | undefined;

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
  if (!loadNative()) {
    const frameBytes = chunkFrameBytes(plain.length);
    const head = writeFrameHead(out, at, 2, frameBytes, false);
    out.set(encodeChunkFrame(orderId, index, encryptChunk(key, plain, orderId, index, total)), at + head);
    return head + frameBytes;
  }
  oneAd ??= Buffer.alloc(CHUNK_AD_ROOM);
  oneFields ??= new Int32Array(CHUNK_FIELDS);
  const bytes = layoutChunk(out, at, plain.length, 0, orderId, index, total, oneFields, 0, oneAd, 0);
  sealChunks(key, plain, out, oneFields, oneAd);
  return bytes;
}

/**
 * Where a laid-out chunk's pieces are, CHUNK_FIELDS numbers per chunk (an Int32Array, so a block's
 * layout crosses to a sealing thread as one small copy): its secretstream header and ciphertext in
 * the output, its plaintext in the plain buffer, its additional data in the ads buffer, its tag.
 */
export const CHUNK_FIELDS = 7;
const F_HEADER = 0;
const F_CIPHER = 1;
const F_PLAIN = 2;
const F_PLAIN_LEN = 3;
const F_AD = 4;
const F_AD_LEN = 5;
const F_TAG = 6;

/**
 * Everything of chunk `index`'s message but its ciphertext: the WebSocket head, the frame header,
 * and a random secretstream header, at `at` in `out`; its additional data at `adAt` in `ads`; and
 * its place in `fields` (CHUNK_FIELDS from `k * CHUNK_FIELDS`), with its plaintext at `plainAt` of
 * the plain buffer sealChunks is given. Returns the message's length. Native only.
 */
export function layoutChunk(
  out: Buffer,
  at: number,
  plainLen: number,
  plainAt: number,
  orderId: string,
  index: number,
  total: number,
  fields: Int32Array,
  k: number,
  ads: Uint8Array,
  adAt: number,
): number {
  const sn = loadNative() as NonNullable<ReturnType<typeof loadNative>>;
  if (headOrder !== orderId) {
    // Through the shared encoders (on an empty body; chunk 0 of 0), so each layout has one definition.
    head = encodeChunkFrame(orderId, 0, new Uint8Array(0)).subarray(0, CHUNK_FRAME_HEADER - 4);
    const whole = chunkAd(orderId, 0, 0);
    adStart = whole.length - 3; // without "0\n0"
    ad.set(whole.subarray(0, adStart));
    headOrder = orderId;
  }
  const adBytes = adStart + ad.write(`${index}\n${total}`, adStart, 'latin1');
  ads.set(ad.subarray(0, adBytes), adAt);
  const frameBytes = chunkFrameBytes(plainLen);
  const frame = at + writeFrameHead(out, at, 2, frameBytes, false);
  out.set(head, frame);
  out.writeUInt32BE(index, frame + CHUNK_FRAME_HEADER - 4);
  // The chunk's header (secretstream's random 24-byte nonce) comes from the server's random pool:
  // init_push draws its own from the kernel, a system call per 64 KiB chunk (7 % of the server's
  // event loop in a delivery here). init_pull on a header drawn by us sets exactly the state
  // init_push would (libsodium's two functions differ only in where the header comes from).
  fillRandom(out, frame + CHUNK_FRAME_HEADER, CHUNK_HEADER_BYTES);
  const f = k * CHUNK_FIELDS;
  fields[f + F_HEADER] = frame + CHUNK_FRAME_HEADER;
  fields[f + F_CIPHER] = frame + CHUNK_FRAME_HEADER + CHUNK_HEADER_BYTES;
  fields[f + F_PLAIN] = plainAt;
  fields[f + F_PLAIN_LEN] = plainLen;
  fields[f + F_AD] = adAt;
  fields[f + F_AD_LEN] = adBytes;
  // sodium-native wants the tag as a number; passing a Buffer fails silently.
  fields[f + F_TAG] =
    index === total - 1
      ? sn.crypto_secretstream_xchacha20poly1305_TAG_FINAL
      : sn.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
  return frame + frameBytes - at;
}

/**
 * `count` full chunks (of `chunkSize` plaintext bytes) of a title of `total`, from chunk `first`,
 * laid out one after another in `out` (layoutChunk), their plaintext one after another too: the
 * layout a sealing thread or sealChunks then encrypts. Returns the fields and additional data.
 */
export function layoutBlock(
  out: Buffer,
  chunkSize: number,
  orderId: string,
  first: number,
  count: number,
  total: number,
): { fields: Int32Array; ads: Uint8Array; bytes: number } {
  const fields = new Int32Array(count * CHUNK_FIELDS);
  const ads = new Uint8Array(count * CHUNK_AD_ROOM);
  let bytes = 0;
  for (let k = 0; k < count; k++)
    bytes += layoutChunk(
      out,
      bytes,
      chunkSize,
      k * chunkSize,
      orderId,
      first + k,
      total,
      fields,
      k,
      ads,
      k * CHUNK_AD_ROOM,
    );
  return { fields, ads, bytes };
}

/**
 * Encrypts laid-out chunks in place (the block sealer's threads run the same loop). Each chunk is a
 * secretstream of its own, so chunks can be sealed anywhere, in any order.
 */
export function sealChunks(
  key: Uint8Array,
  plain: Uint8Array,
  out: Uint8Array,
  fields: Int32Array,
  ads: Uint8Array,
): void {
  const sn = loadNative() as NonNullable<ReturnType<typeof loadNative>>;
  state ??= Buffer.allocUnsafe(sn.crypto_secretstream_xchacha20poly1305_STATEBYTES);
  for (let f = 0; f < fields.length; f += CHUNK_FIELDS) {
    const h = fields[f + F_HEADER] as number;
    const c = fields[f + F_CIPHER] as number;
    const p = fields[f + F_PLAIN] as number;
    const n = fields[f + F_PLAIN_LEN] as number;
    const a = fields[f + F_AD] as number;
    sn.crypto_secretstream_xchacha20poly1305_init_pull(state, out.subarray(h, h + CHUNK_HEADER_BYTES), key);
    sn.crypto_secretstream_xchacha20poly1305_push(
      state,
      out.subarray(c, c + n + CHUNK_ABYTES),
      plain.subarray(p, p + n),
      ads.subarray(a, a + (fields[f + F_AD_LEN] as number)),
      fields[f + F_TAG] as number,
    );
  }
}
