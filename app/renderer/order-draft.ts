/**
 * The order form's rules, kept pure so they are tested in Node: period presets and custom
 * ranges, schedule parsing, and the window the server will create (shared `orderTimes`).
 * The server checks everything again; this only lets a person see mistakes before sending.
 */
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import { type OrderTimes, orderTimes } from '../../shared/order-times.ts';
import type { PlaceOrder, TerminalView } from '../../shared/protocol.ts';

export const PERIOD_PRESETS = [
  { id: '48h', label: '48 hours', seconds: 48 * 3600 },
  { id: '7d', label: '7 days', seconds: 7 * 86400 },
] as const;

export type Unit = 'minutes' | 'hours' | 'days';
const UNIT_SECONDS: Record<Unit, number> = { minutes: 60, hours: 3600, days: 86400 };

export type ScheduleMode = 'now' | 'delivery-start' | 'key-delivery';

export interface OrderDraft {
  itemNumber: number;
  terminalId: string;
  periodPreset: (typeof PERIOD_PRESETS)[number]['id'] | 'custom';
  customAmount: string;
  customUnit: Unit;
  scheduleMode: ScheduleMode;
  /** A `datetime-local` value, in the person's local time. */
  scheduleAt: string;
}

export type DraftField = 'terminal' | 'period' | 'schedule';

export type DraftResult =
  | { ok: true; request: Omit<PlaceOrder, 'type' | 'id'>; times: OrderTimes }
  | { ok: false; errors: Partial<Record<DraftField, string>> };

export function periodSeconds(d: OrderDraft): number | string {
  if (d.periodPreset !== 'custom') {
    return PERIOD_PRESETS.find((p) => p.id === d.periodPreset)?.seconds ?? 'choose a rental period';
  }
  const n = Number(d.customAmount);
  if (d.customAmount.trim() === '' || !Number.isInteger(n) || n <= 0)
    return 'enter a whole number greater than 0';
  const seconds = n * UNIT_SECONDS[d.customUnit];
  if (seconds < 60) return 'a rental lasts at least 1 minute';
  if (seconds > LIMITS.maxRentalSeconds)
    return `a rental lasts at most ${LIMITS.maxRentalSeconds / 86400} days`;
  return seconds;
}

export function validateDraft(d: OrderDraft, terminals: TerminalView[], now: number): DraftResult {
  const errors: Partial<Record<DraftField, string>> = {};
  if (!terminals.some((t) => t.terminalId === d.terminalId)) errors.terminal = 'choose one of your terminals';
  const seconds = periodSeconds(d);
  if (typeof seconds === 'string') errors.period = seconds;
  let at: number | undefined;
  if (d.scheduleMode !== 'now') {
    at = d.scheduleAt ? new Date(d.scheduleAt).getTime() : Number.NaN;
    if (!Number.isFinite(at)) errors.schedule = 'choose a date and time';
  }
  if (Object.keys(errors).length) return { ok: false, errors };
  const schedule =
    d.scheduleMode === 'now'
      ? ({ mode: 'now' } as const)
      : { mode: d.scheduleMode, at: Math.round(at as number) };
  try {
    const times = orderTimes({ periodSeconds: seconds as number, schedule }, now, 1);
    return {
      ok: true,
      request: {
        itemNumber: d.itemNumber,
        terminalId: d.terminalId,
        periodSeconds: seconds as number,
        schedule,
      },
      times,
    };
  } catch (err) {
    if (err instanceof RentalError) {
      return {
        ok: false,
        errors: err.code === 'BAD_PERIOD' ? { period: err.message } : { schedule: err.message },
      };
    }
    throw err;
  }
}

/** `datetime-local` value for a time, in local time (what the input shows). */
export function toLocalInput(t: number): string {
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}
