/**
 * sodium-native for the headless terminal's per-order checks (the licence's signature, the sealed
 * content key): several times faster than WASM on a set-top box's CPU, with the same answers
 * (test/player/native-checks.test.ts). Node only; the browser player keeps libsodium-wrappers.
 */
import { createRequire } from 'node:module';
import { type NativeChecks, setNativeChecks } from '../../shared/crypto.ts';

interface SodiumChecks {
  crypto_box_SEALBYTES: number;
  crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
  crypto_box_seal_open(m: Uint8Array, c: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean;
}

/** The native checks, or undefined when the addon cannot load here (WASM then serves). */
export function nativeChecks(): NativeChecks | undefined {
  let sn: SodiumChecks;
  try {
    sn = createRequire(import.meta.url)('sodium-native') as SodiumChecks;
  } catch {
    return undefined;
  }
  return {
    verify: (signature, message, publicKey) => sn.crypto_sign_verify_detached(signature, message, publicKey),
    sealOpen: (sealed, pk, sk) => {
      if (sealed.length < sn.crypto_box_SEALBYTES) return undefined;
      const out = new Uint8Array(sealed.length - sn.crypto_box_SEALBYTES);
      return sn.crypto_box_seal_open(out, sealed, pk, sk) ? out : undefined;
    },
  };
}

/** Use them for this process, if they load. */
export function installNativeChecks(): boolean {
  const checks = nativeChecks();
  setNativeChecks(checks);
  return checks !== undefined;
}
