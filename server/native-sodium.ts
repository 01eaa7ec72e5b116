/**
 * sodium-native on the server, where it is several times faster than libsodium-wrappers' WASM: chunk
 * encryption (content/chunk-cipher.ts), and per order the content key, its wrapping at rest and the
 * licence (signature and sealed box). Every function writes the exact bytes of its shared/crypto.ts
 * counterpart (tests check both ways) and falls back to it when the native addon cannot load.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import {
  boxPublicKeyOf,
  newContentKey,
  type SignedEnvelope,
  type SignPurpose,
  secretboxOpen,
  secretboxSeal,
  signedBytes,
  signJson,
  terminalIdFromPublicKey,
} from '../shared/crypto.ts';
import { issueLicence, type LicenceFields, licenceBody } from '../shared/licence.ts';
import { BoundedCache } from './bounded-cache.ts';
import { fillRandom } from './random-pool.ts';

/** The part of sodium-native used here. Version 5 takes any typed array, not only Buffers. */
export interface SodiumNative {
  crypto_secretstream_xchacha20poly1305_STATEBYTES: number;
  crypto_secretstream_xchacha20poly1305_TAG_MESSAGE: number;
  crypto_secretstream_xchacha20poly1305_TAG_FINAL: number;
  /** Sets the same state as init_push would, from a header the caller drew (see chunk-cipher.ts). */
  crypto_secretstream_xchacha20poly1305_init_pull(
    state: Uint8Array,
    header: Uint8Array,
    key: Uint8Array,
  ): void;
  crypto_secretstream_xchacha20poly1305_push(
    state: Uint8Array,
    c: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | null,
    tag: number,
  ): number;
  crypto_sign_BYTES: number;
  crypto_sign_detached(sig: Buffer, m: Buffer, sk: Buffer): void;
  crypto_box_SEALBYTES: number;
  crypto_box_seal(c: Buffer, m: Buffer, pk: Buffer): void;
  crypto_secretbox_NONCEBYTES: number;
  crypto_secretbox_MACBYTES: number;
  crypto_secretbox_easy(c: Buffer, m: Buffer, n: Buffer, k: Buffer): void;
  crypto_secretbox_open_easy(m: Buffer, c: Buffer, n: Buffer, k: Buffer): boolean;
  crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
  crypto_box_seal_open(m: Uint8Array, c: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean;
}

let native: SodiumNative | null | undefined;
export function loadNative(): SodiumNative | null {
  if (native === undefined) {
    try {
      native = createRequire(import.meta.url)('sodium-native') as SodiumNative;
    } catch {
      native = null;
    }
  }
  return native;
}

/**
 * A worker thread running `source` with sodium-native, or undefined without it. `source` is plain
 * JavaScript (the tsx hooks registered on the main thread do not reach a worker) and finds the
 * addon at `workerData.sodium`. `onDeath` hears once of an error or an exit, a terminate() included
 * (the caller tells its own close apart). Idle, the worker does not hold the process open: ref() it
 * while work is on it.
 */
export function sodiumWorker<M>(
  source: string,
  workerData: Record<string, unknown>,
  onMessage: (m: M) => void,
  onDeath: (why: string) => void,
): Worker | undefined {
  if (!loadNative()) return undefined;
  const sodium = createRequire(import.meta.url).resolve('sodium-native');
  const worker = new Worker(source, { eval: true, execArgv: [], workerData: { ...workerData, sodium } });
  let dead = false;
  const died = (why: string) => {
    if (dead) return;
    dead = true;
    onDeath(why);
  };
  worker.on('message', onMessage);
  worker.on('error', (err) => died(String(err)));
  worker.on('exit', (code) => died(`exit code ${code}`));
  worker.unref();
  return worker;
}

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.length);

/** A fresh per-order content key (secretstream key, 32 bytes). */
export function nativeContentKey(): Uint8Array {
  const sn = loadNative();
  if (!sn) return newContentKey();
  const key = Buffer.alloc(32);
  fillRandom(key);
  return key;
}

/** The same layout as secretboxSeal: nonce, then the box. */
export function nativeSecretboxSeal(message: Uint8Array, key: Uint8Array): Uint8Array {
  const sn = loadNative();
  if (!sn) return secretboxSeal(message, key);
  const n = sn.crypto_secretbox_NONCEBYTES;
  // Memory of its own, not a slice of Node's shared 8 KiB pool: an order's wrapped key is kept with
  // its row in the store's cache for many seconds, and a pooled one kept its whole 8 KiB slab alive
  // (1,240 slabs, 10 MB, for 6,000 cached orders in a heap snapshot of the orders benchmark).
  const out = Buffer.allocUnsafeSlow(n + sn.crypto_secretbox_MACBYTES + message.length);
  fillRandom(out, 0, n);
  sn.crypto_secretbox_easy(out.subarray(n), buf(message), out.subarray(0, n), buf(key));
  return out;
}

export function nativeSecretboxOpen(sealed: Uint8Array, key: Uint8Array): Uint8Array {
  const sn = loadNative();
  if (!sn) return secretboxOpen(sealed, key);
  const n = sn.crypto_secretbox_NONCEBYTES;
  const out = Buffer.allocUnsafe(sealed.length - n - sn.crypto_secretbox_MACBYTES);
  if (!sn.crypto_secretbox_open_easy(out, buf(sealed).subarray(n), buf(sealed).subarray(0, n), buf(key)))
    throw new Error('wrapped key failed authentication');
  return out;
}

export function nativeSignJson(purpose: SignPurpose, value: unknown, secretKey: Uint8Array): SignedEnvelope {
  const sn = loadNative();
  if (!sn) return signJson(purpose, value, secretKey);
  const bytes = Buffer.from(JSON.stringify(value));
  const sig = Buffer.allocUnsafe(sn.crypto_sign_BYTES);
  sn.crypto_sign_detached(sig, Buffer.from(signedBytes(purpose, bytes)), buf(secretKey));
  return { data: bytes.toString('base64url'), sig: sig.toString('base64url') };
}

/**
 * A terminal's box key (converted from its signing key) and id, remembered: the conversion was 4 % of
 * a busy server, and a terminal receives many licences. Bounded; the least recently used go first.
 */
const terminalKeyCache = new BoundedCache<string, { boxPk: Buffer; terminalId: string }>(10_000);
export function terminalKeys(signPublicKey: Uint8Array) {
  const k = buf(signPublicKey).toString('base64');
  let keys = terminalKeyCache.get(k);
  if (!keys) {
    keys = {
      boxPk: buf(boxPublicKeyOf(signPublicKey)),
      terminalId: terminalIdFromPublicKey(signPublicKey),
    };
    terminalKeyCache.set(k, keys);
  }
  return keys;
}

/** issueLicence with native signing and sealing: same licence, same envelope. */
export function nativeIssueLicence(
  serverSecretKey: Uint8Array,
  fields: LicenceFields,
  contentKey: Uint8Array,
  terminalSignPublicKey: Uint8Array,
): SignedEnvelope {
  const sn = loadNative();
  if (!sn) return issueLicence(serverSecretKey, fields, contentKey, terminalSignPublicKey);
  const { boxPk, terminalId } = terminalKeys(terminalSignPublicKey);
  const sealed = Buffer.allocUnsafe(sn.crypto_box_SEALBYTES + contentKey.length);
  sn.crypto_box_seal(sealed, buf(contentKey), boxPk);
  return nativeSignJson(
    'licence',
    licenceBody(fields, terminalId, sealed.toString('base64url')),
    serverSecretKey,
  );
}
