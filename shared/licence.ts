/**
 * The licence: the rental window signed by the key server, with the per-order content key sealed
 * to one terminal. The sealed key is inside the signed bytes, so it cannot be swapped either.
 */
import { z } from 'zod';
import {
  boxPublicKeyOf,
  fromB64,
  type Identity,
  openSealed,
  openSignedJson,
  type SignedEnvelope,
  sealTo,
  signJson,
  terminalIdFromPublicKey,
  toB64,
} from './crypto.ts';
import { RentalError } from './errors.ts';

export const Licence = z.strictObject({
  v: z.literal(1),
  orderId: z.uuid(),
  itemNumber: z.number().int().positive(),
  terminalId: z.string(),
  notBefore: z.number().int(),
  notAfter: z.number().int(),
  issuedAt: z.number().int(),
  size: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive(),
  totalChunks: z.number().int().positive(),
  sealedKey: z.string(),
});
export type Licence = z.infer<typeof Licence>;

export type LicenceFields = Omit<Licence, 'v' | 'sealedKey' | 'terminalId'>;

/**
 * A licence's fields in the order they are signed, for every issuer (WASM, sodium-native, the
 * server's signing thread). `sealedKey` comes last: server/licence-signer.ts builds the JSON with an
 * empty one and fills it in on its worker.
 */
export const licenceBody = (fields: LicenceFields, terminalId: string, sealedKey: string): Licence => ({
  v: 1,
  ...fields,
  terminalId,
  sealedKey,
});

export function issueLicence(
  serverSecretKey: Uint8Array,
  fields: LicenceFields,
  contentKey: Uint8Array,
  terminalSignPublicKey: Uint8Array,
): SignedEnvelope {
  const licence = licenceBody(
    fields,
    terminalIdFromPublicKey(terminalSignPublicKey),
    toB64(sealTo(contentKey, boxPublicKeyOf(terminalSignPublicKey))),
  );
  return signJson('licence', licence, serverSecretKey);
}

/** Verify a licence for this terminal; throws BAD_SIGNATURE for anything forged, tampered or foreign. */
export function verifyLicence(env: SignedEnvelope, serverPublicKey: Uint8Array, terminalId: string): Licence {
  const parsed = Licence.safeParse(openSignedJson('licence', env, serverPublicKey));
  if (!parsed.success) throw new RentalError('BAD_SIGNATURE', 'licence signature or contents are invalid');
  if (parsed.data.terminalId !== terminalId) {
    throw new RentalError('BAD_SIGNATURE', 'licence was issued to another terminal');
  }
  if (parsed.data.notAfter <= parsed.data.notBefore) {
    throw new RentalError('BAD_SIGNATURE', 'licence window is empty');
  }
  return parsed.data;
}

/** Unseal the content key. Only the terminal the licence names can do this. */
export function unsealContentKey(licence: Licence, identity: Identity): Uint8Array {
  const key = openSealed(fromB64(licence.sealedKey), identity);
  if (!key) throw new RentalError('BAD_SIGNATURE', 'content key is not sealed to this terminal');
  return key;
}
