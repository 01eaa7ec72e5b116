/** Argon2id password hashing (libsodium crypto_pwhash). The sumo build is needed for pwhash. */
import sodium from 'libsodium-wrappers-sumo';

let ready: Promise<void> | undefined;
const init = () => {
  ready ??= sodium.ready;
  return ready;
};

export async function hashPassword(password: string): Promise<string> {
  await init();
  return sodium.crypto_pwhash_str(
    password,
    sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE,
    sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE,
  );
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  await init();
  try {
    return sodium.crypto_pwhash_str_verify(hash, password);
  } catch {
    return false;
  }
}

/** A hash to verify against when the e-mail is unknown, so timing does not reveal which e-mails exist. */
let decoy: Promise<string> | undefined;
export const decoyHash = () => {
  decoy ??= hashPassword('decoy password that never matches');
  return decoy;
};
