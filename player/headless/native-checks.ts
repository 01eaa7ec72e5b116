/**
 * sodium-native for the headless terminal's per-order checks (the licence's signature, the sealed
 * content key): several times faster than WASM on a set-top box's CPU, with the same answers
 * (test/player/native-checks.test.ts). Node only; the browser player keeps libsodium-wrappers.
 */
import { loadNative } from '../../server/native-sodium.ts';
import { type NativeChecks, setNativeChecks } from '../../shared/crypto.ts';

/** The native checks, or undefined when the addon cannot load here (WASM then serves). */
export function nativeChecks(): NativeChecks | undefined {
  // The server's loader of the addon: one place decides whether sodium-native is usable.
  const sn = loadNative();
  if (!sn) return undefined;
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
