/**
 * When content and key go out and when the rental window opens and closes, from an order's period
 * and schedule. Shared so the store app shows exactly the window the server will create.
 */
import { RentalError } from './errors.ts';
import { LIMITS } from './limits.ts';
import type { PlaceOrder } from './protocol.ts';

/** A schedule a little in the past (clock skew, slow typing) means "now"; more is an error. */
const PAST_GRACE_MS = 60_000;

export interface OrderTimes {
  contentAt: number;
  keyAt: number;
  notBefore: number;
  notAfter: number;
}

/**
 * When content and key go out, and the window. The rental period starts when the key is released:
 * "deliver now" releases both now; a delivery start pre-loads later and releases the key with it;
 * a key delivery time sends content now and the key (and so the window) at that time.
 */
export function orderTimes(
  m: Pick<PlaceOrder, 'periodSeconds' | 'schedule'>,
  now: number,
  minPeriodSeconds: number,
): OrderTimes {
  if (m.periodSeconds < minPeriodSeconds || m.periodSeconds > LIMITS.maxRentalSeconds) {
    throw new RentalError(
      'BAD_PERIOD',
      `the rental period must be between ${minPeriodSeconds} seconds and ${LIMITS.maxRentalSeconds / 86400} days`,
    );
  }
  let at = now;
  if (m.schedule.mode !== 'now') {
    if (m.schedule.at < now - PAST_GRACE_MS)
      throw new RentalError('BAD_SCHEDULE', 'the scheduled time is in the past');
    if (m.schedule.at > now + LIMITS.maxScheduleAheadMs) {
      throw new RentalError(
        'BAD_SCHEDULE',
        `schedule at most ${LIMITS.maxScheduleAheadMs / 86_400_000} days ahead`,
      );
    }
    at = Math.max(now, m.schedule.at);
  }
  const contentAt = m.schedule.mode === 'delivery-start' ? at : now;
  const keyAt = m.schedule.mode === 'now' ? now : at;
  return { contentAt, keyAt, notBefore: keyAt, notAfter: keyAt + m.periodSeconds * 1000 };
}
