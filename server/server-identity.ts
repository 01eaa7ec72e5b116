/**
 * The server's long-lived secrets, kept in the data folder with owner-only permissions:
 * the Ed25519 key that signs licences and time, and the key that wraps per-order keys at rest.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromB64, generateIdentity, type Identity, randomBytes, toB64 } from '../shared/crypto.ts';

export interface ServerIdentity extends Identity {
  storageKey: Uint8Array;
  /** Authenticates the key-server <-> content-server link when the roles run apart. */
  peerKey: Uint8Array;
}

export function loadServerIdentity(dataDir: string, peerSecret?: string): ServerIdentity {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'server-keys.json');
  if (!existsSync(file)) {
    const id = generateIdentity();
    const keys = {
      signPublicKey: toB64(id.signPublicKey),
      signSecretKey: toB64(id.signSecretKey),
      storageKey: toB64(randomBytes(32)),
      peerKey: toB64(randomBytes(32)),
    };
    writeFileSync(file, JSON.stringify(keys, null, 2), { mode: 0o600, flag: 'wx' });
  }
  const k = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  const need = (name: string) => {
    const v = k[name];
    if (!v) throw new Error(`${file} is missing ${name}`);
    return fromB64(v);
  };
  return {
    signPublicKey: need('signPublicKey'),
    signSecretKey: need('signSecretKey'),
    storageKey: need('storageKey'),
    peerKey: peerSecret ? fromB64(peerSecret) : need('peerKey'),
  };
}
