/**
 * The pre-roll (claims 14/20/26): an ad the content store sends inside a delivery, which the player
 * plays before the title the first time it starts. The key server signs what it is (the ad, its
 * creative's hash, the order it belongs to), so a terminal refuses a pre-roll that is forged, swapped
 * for another creative, or lifted from another order.
 */
import { z } from 'zod';
import {
  bytesEqual,
  fromB64,
  hashBytes,
  openSignedJson,
  type SignedEnvelope,
  signJson,
  toB64,
} from './crypto.ts';
import { RentalError } from './errors.ts';
import { LIMITS } from './limits.ts';

export const Preroll = z.strictObject({
  v: z.literal(1),
  orderId: z.uuid(),
  adId: z.uuid(),
  text: z.string().max(200),
  mimeType: z.string().max(100),
  bytes: z.number().int().positive().max(LIMITS.maxCreativeBytes),
  /** BLAKE2b-256 of the creative, base64url. */
  hash: z.string().max(64),
});
export type Preroll = z.infer<typeof Preroll>;

export function signPreroll(
  serverSecretKey: Uint8Array,
  ad: { orderId: string; adId: string; text: string; mimeType: string },
  creative: Uint8Array,
  /** The creative's hash (base64url), when the caller already has it. */
  hash: string = toB64(hashBytes(creative)),
): SignedEnvelope {
  const preroll: Preroll = { v: 1, ...ad, bytes: creative.length, hash };
  return signJson('preroll', preroll, serverSecretKey);
}

/** Check a pre-roll and its creative for this order; throws BAD_SIGNATURE for anything not genuine. */
export function verifyPreroll(
  env: SignedEnvelope,
  creative: Uint8Array,
  serverPublicKey: Uint8Array,
  orderId: string,
): Preroll {
  const parsed = Preroll.safeParse(openSignedJson('preroll', env, serverPublicKey));
  if (!parsed.success) throw new RentalError('BAD_SIGNATURE', 'pre-roll signature or contents are invalid');
  const p = parsed.data;
  if (p.orderId !== orderId) throw new RentalError('BAD_SIGNATURE', 'pre-roll belongs to another order');
  if (creative.length !== p.bytes || !bytesEqual(hashBytes(creative), fromB64(p.hash)))
    throw new RentalError('BAD_SIGNATURE', 'pre-roll creative is not the one the server signed');
  return p;
}
