/**
 * libsodium helpers shared by server, store app and player. One byte format everywhere:
 * the server may use faster bindings later, but what goes over the wire is defined here.
 */
import sodiumModule from 'libsodium-wrappers';

export type Sodium = typeof sodiumModule;
let sodium: Sodium | undefined;

/** Resolve once libsodium's WASM is loaded. Every other helper needs this to have been awaited. */
export async function cryptoReady(): Promise<Sodium> {
  await sodiumModule.ready;
  sodium = sodiumModule;
  return sodium;
}

function na(): Sodium {
  if (!sodium) throw new Error('cryptoReady() must be awaited before using crypto helpers');
  return sodium;
}

export const toB64 = (bytes: Uint8Array): string =>
  na().to_base64(bytes, na().base64_variants.URLSAFE_NO_PADDING);
export function fromB64(text: string): Uint8Array {
  return na().from_base64(text, na().base64_variants.URLSAFE_NO_PADDING);
}
export const toHex = (bytes: Uint8Array): string => na().to_hex(bytes);
/** BLAKE2b-256: fingerprints a creative inside a signature. */
export const hashBytes = (bytes: Uint8Array): Uint8Array => na().crypto_generichash(32, bytes, null);
export const randomBytes = (n: number): Uint8Array => na().randombytes_buf(n);
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
export const encodeUtf8 = (s: string): Uint8Array => utf8.encode(s);
export const decodeUtf8 = (b: Uint8Array): string => utf8Decoder.decode(b);

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Constant-time equality for secrets and MACs. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && na().memcmp(a, b);
}

// ---------------------------------------------------------------- identities

/** Ed25519 identity; the X25519 key used for sealed boxes is derived from it, so one key is pinned. */
export interface Identity {
  signPublicKey: Uint8Array;
  signSecretKey: Uint8Array;
}

export function generateIdentity(): Identity {
  const kp = na().crypto_sign_keypair();
  return { signPublicKey: kp.publicKey, signSecretKey: kp.privateKey };
}

/** A terminal's address: a stable id derived from its public key (32 hex chars). */
export function terminalIdFromPublicKey(signPublicKey: Uint8Array): string {
  return toHex(na().crypto_generichash(16, signPublicKey, null));
}

export const boxPublicKeyOf = (signPublicKey: Uint8Array): Uint8Array =>
  na().crypto_sign_ed25519_pk_to_curve25519(signPublicKey);
export const boxSecretKeyOf = (signSecretKey: Uint8Array): Uint8Array =>
  na().crypto_sign_ed25519_sk_to_curve25519(signSecretKey);

// ---------------------------------------------------------------- signatures

/** Purposes are mixed into every signature so a signed time can never pass as a licence, etc. */
export type SignPurpose = 'licence' | 'time' | 'terminal-auth' | 'peer-auth' | 'preroll';
const purposeBytes = (p: SignPurpose) => encodeUtf8(`rental-delivery/v1/${p}\n`);

/** The exact bytes a signature for `purpose` covers (for signers outside this module, e.g. sodium-native). */
export const signedBytes = (purpose: SignPurpose, data: Uint8Array): Uint8Array =>
  concatBytes(purposeBytes(purpose), data);

export function signDetached(purpose: SignPurpose, data: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return na().crypto_sign_detached(signedBytes(purpose, data), secretKey);
}

/**
 * Native versions of the two checks a terminal runs for every order (a signature, a sealed box), for
 * runtimes that have them: the headless terminal installs sodium-native's
 * (`player/headless/native-checks.ts`); browsers keep WASM. Same answers, tested both ways.
 */
export interface NativeChecks {
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  sealOpen(sealed: Uint8Array, boxPublicKey: Uint8Array, boxSecretKey: Uint8Array): Uint8Array | undefined;
}
let nativeChecks: NativeChecks | undefined;
export function setNativeChecks(checks: NativeChecks | undefined): void {
  nativeChecks = checks;
}

export function verifyDetached(
  purpose: SignPurpose,
  data: Uint8Array,
  signature: Uint8Array,
  publicKey: Uint8Array,
): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    const message = signedBytes(purpose, data);
    if (nativeChecks) return nativeChecks.verify(signature, message, publicKey);
    return na().crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** A JSON object signed as exact bytes (no canonicalisation needed: we verify the bytes we parse). */
export interface SignedEnvelope {
  data: string; // base64url of UTF-8 JSON
  sig: string; // base64url Ed25519 signature
}

export function signJson(purpose: SignPurpose, value: unknown, secretKey: Uint8Array): SignedEnvelope {
  const bytes = encodeUtf8(JSON.stringify(value));
  return { data: toB64(bytes), sig: toB64(signDetached(purpose, bytes, secretKey)) };
}

/** Returns the parsed JSON if the signature is good, else undefined. */
export function openSignedJson(purpose: SignPurpose, env: SignedEnvelope, publicKey: Uint8Array): unknown {
  try {
    const bytes = fromB64(env.data);
    if (!verifyDetached(purpose, bytes, fromB64(env.sig), publicKey)) return undefined;
    return JSON.parse(decodeUtf8(bytes));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- sealed boxes

export const sealTo = (message: Uint8Array, boxPublicKey: Uint8Array): Uint8Array =>
  na().crypto_box_seal(message, boxPublicKey);

/** An identity's box key pair, converted once (the conversion would otherwise run for every licence). */
const boxKeys = new WeakMap<Identity, { pk: Uint8Array; sk: Uint8Array }>();
function boxKeysOf(identity: Identity) {
  let keys = boxKeys.get(identity);
  if (!keys) {
    keys = { pk: boxPublicKeyOf(identity.signPublicKey), sk: boxSecretKeyOf(identity.signSecretKey) };
    boxKeys.set(identity, keys);
  }
  return keys;
}

export function openSealed(sealed: Uint8Array, identity: Identity): Uint8Array | undefined {
  try {
    const { pk, sk } = boxKeysOf(identity);
    if (nativeChecks) return nativeChecks.sealOpen(sealed, pk, sk);
    return na().crypto_box_seal_open(sealed, pk, sk);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- MACs (peer link)

export const macOf = (data: Uint8Array, key: Uint8Array): Uint8Array => na().crypto_auth(data, key);
export function macValid(mac: Uint8Array, data: Uint8Array, key: Uint8Array): boolean {
  try {
    return na().crypto_auth_verify(mac, data, key);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- secret boxes (data at rest)

export function secretboxSeal(message: Uint8Array, key: Uint8Array): Uint8Array {
  const nonce = randomBytes(na().crypto_secretbox_NONCEBYTES);
  return concatBytes(nonce, na().crypto_secretbox_easy(message, nonce, key));
}

export function secretboxOpen(sealed: Uint8Array, key: Uint8Array): Uint8Array {
  const n = na().crypto_secretbox_NONCEBYTES;
  return na().crypto_secretbox_open_easy(sealed.subarray(n), sealed.subarray(0, n), key);
}

export const newContentKey = (): Uint8Array => na().crypto_secretstream_xchacha20poly1305_keygen();

// ---------------------------------------------------------------- content chunks

/**
 * Content is cut into fixed plaintext chunks, and each chunk is one secretstream message with its
 * own header. One stream for the whole title would force in-order decryption: no seeking in the
 * player and no resuming at chunk N on the server without keeping per-order cipher state. The chunk
 * index, the chunk count and the order id are bound as additional data and the last chunk carries
 * TAG_FINAL, so reordering, splicing across orders and truncation still fail authentication.
 */
export const CHUNK_HEADER_BYTES = 24; // crypto_secretstream_xchacha20poly1305_HEADERBYTES
export const CHUNK_ABYTES = 17; // crypto_secretstream_xchacha20poly1305_ABYTES
export const cipherChunkLength = (plainLength: number): number =>
  plainLength + CHUNK_HEADER_BYTES + CHUNK_ABYTES;

export function chunkCount(size: number, chunkSize: number): number {
  return Math.max(1, Math.ceil(size / chunkSize));
}

/** Plain length of chunk `index` of a title of `size` bytes. */
export function plainChunkLength(size: number, chunkSize: number, index: number): number {
  const total = chunkCount(size, chunkSize);
  if (index < total - 1) return chunkSize;
  return size - chunkSize * (total - 1);
}

export const chunkAd = (orderId: string, index: number, total: number): Uint8Array =>
  encodeUtf8(`rental-delivery/v1/chunk\n${orderId}\n${index}\n${total}`);
/**
 * Room for one chunk's additional data wherever it is built in place (the server's block layout,
 * the player's ChunkOpener): with a UUID order id and 32-bit index and count, 83 bytes at most.
 */
export const CHUNK_AD_ROOM = 128;

export function encryptChunk(
  key: Uint8Array,
  plain: Uint8Array,
  orderId: string,
  index: number,
  total: number,
): Uint8Array {
  const s = na();
  const { state, header } = s.crypto_secretstream_xchacha20poly1305_init_push(key);
  const tag =
    index === total - 1
      ? s.crypto_secretstream_xchacha20poly1305_TAG_FINAL
      : s.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
  const cipher = s.crypto_secretstream_xchacha20poly1305_push(
    state,
    plain,
    chunkAd(orderId, index, total),
    tag,
  );
  return concatBytes(header, cipher);
}

/** The part of libsodium's own module (under libsodium-wrappers) that ChunkOpener uses. */
interface RawSodium {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(at: number): void;
  _crypto_secretstream_xchacha20poly1305_init_pull(state: number, header: number, key: number): number;
  /** 64-bit lengths are passed as two 32-bit halves (Emscripten's legalisation), low first. */
  _crypto_secretstream_xchacha20poly1305_pull(
    state: number,
    m: number,
    mlenP: number,
    tagP: number,
    c: number,
    clenLow: number,
    clenHigh: number,
    ad: number,
    adlenLow: number,
    adlenHigh: number,
  ): number;
}

/** Room for the secretstream state (crypto_secretstream_xchacha20poly1305_statebytes() is 52), 8-aligned. */
const STATE_ROOM = 64;

/**
 * Opens one title's chunks, exactly as decryptChunk does (tests compare), through libsodium's own
 * functions and one set of buffers in its memory for the whole title. libsodium-wrappers'
 * init_pull allocates a state it never frees (about 60 bytes a chunk: 0.5 MB of WASM memory, which
 * never shrinks, per 512 MiB played; measured), and its pull copies every chunk through buffers
 * allocated for it. Call close() when done: it wipes the key and the state.
 */
export class ChunkOpener {
  private readonly lib: RawSodium;
  private readonly at: number;
  private readonly state: number;
  private readonly header: number;
  private readonly key: number;
  private readonly tag: number;
  private readonly ad: number;
  private readonly cipher: number;
  private readonly plain: number;
  private readonly bytes: number;
  private closed = false;

  constructor(
    key: Uint8Array,
    /** The longest stored chunk it will open (header and ciphertext): `cipherChunkLength(chunkSize)`. */
    private readonly maxChunkBytes: number,
  ) {
    this.lib = (na() as unknown as { libsodium: RawSodium }).libsodium;
    const cipherRoom = Math.max(CHUNK_ABYTES, maxChunkBytes - CHUNK_HEADER_BYTES);
    this.bytes = STATE_ROOM + CHUNK_HEADER_BYTES + 32 + 8 + CHUNK_AD_ROOM + 2 * cipherRoom;
    this.at = this.lib._malloc(this.bytes);
    if (!this.at) throw new Error('libsodium is out of memory');
    this.state = this.at;
    this.header = this.state + STATE_ROOM;
    this.key = this.header + CHUNK_HEADER_BYTES;
    this.tag = this.key + 32;
    this.ad = this.tag + 8;
    this.cipher = this.ad + CHUNK_AD_ROOM;
    this.plain = this.cipher + cipherRoom;
    this.lib.HEAPU8.set(key, this.key);
  }

  /**
   * Chunk `index` of `total` decrypted, or undefined if it fails any check: a copy of its own, or
   * the start of `into` when that is given and long enough (no new memory per chunk).
   */
  open(
    data: Uint8Array,
    orderId: string,
    index: number,
    total: number,
    into?: Uint8Array,
  ): Uint8Array | undefined {
    if (this.closed) throw new Error('the chunk opener is closed');
    if (data.length < CHUNK_HEADER_BYTES + CHUNK_ABYTES || data.length > this.maxChunkBytes) return undefined;
    const ad = chunkAd(orderId, index, total);
    if (ad.length > CHUNK_AD_ROOM) return undefined;
    const cipherBytes = data.length - CHUNK_HEADER_BYTES;
    const lib = this.lib;
    // Read HEAPU8 afresh on every call: a view goes stale if libsodium's memory grows meanwhile.
    const heap = lib.HEAPU8;
    heap.set(data.subarray(0, CHUNK_HEADER_BYTES), this.header);
    heap.set(data.subarray(CHUNK_HEADER_BYTES), this.cipher);
    heap.set(ad, this.ad);
    if (lib._crypto_secretstream_xchacha20poly1305_init_pull(this.state, this.header, this.key) !== 0)
      return undefined;
    const failed = lib._crypto_secretstream_xchacha20poly1305_pull(
      this.state,
      this.plain,
      0,
      this.tag,
      this.cipher,
      cipherBytes,
      0,
      this.ad,
      ad.length,
      0,
    );
    if (failed !== 0) return undefined;
    const s = na();
    const isFinal = heap[this.tag] === s.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if ((index === total - 1) !== isFinal) return undefined;
    const plain = heap.subarray(this.plain, this.plain + cipherBytes - CHUNK_ABYTES);
    if (!into || into.length < plain.length) return plain.slice();
    into.set(plain);
    return into.subarray(0, plain.length);
  }

  /** Wipes the key, the state and the last plaintext, and gives the memory back. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lib.HEAPU8.fill(0, this.at, this.at + this.bytes);
    this.lib._free(this.at);
  }
}

/** Decrypts one chunk, or returns undefined if it was tampered with, misplaced or from another order. */
export function decryptChunk(
  key: Uint8Array,
  data: Uint8Array,
  orderId: string,
  index: number,
  total: number,
): Uint8Array | undefined {
  const s = na();
  if (data.length < CHUNK_HEADER_BYTES + CHUNK_ABYTES) return undefined;
  try {
    const state = s.crypto_secretstream_xchacha20poly1305_init_pull(
      data.subarray(0, CHUNK_HEADER_BYTES),
      key,
    );
    const out = s.crypto_secretstream_xchacha20poly1305_pull(
      state,
      data.subarray(CHUNK_HEADER_BYTES),
      chunkAd(orderId, index, total),
    );
    if (!out) return undefined;
    const wantFinal = index === total - 1;
    const isFinal = out.tag === s.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if (wantFinal !== isFinal) return undefined;
    return out.message;
  } catch {
    return undefined;
  }
}
