/**
 * Customer identification information (claims 16, 22, 28): from each order, a record of which
 * customer rented what, classified into a fixed, documented set of items. Pure, so it is tested on
 * edge values and both the server and reports use the same rules.
 */
import { z } from 'zod';

export const AGE_BANDS = ['under-18', '18-24', '25-34', '35-44', '45-54', '55-64', '65+', 'unknown'] as const;
export const REGIONS = ['north', 'south', 'east', 'west', 'central', 'abroad', 'unknown'] as const;
export const DAY_PARTS = ['morning', 'afternoon', 'evening', 'night'] as const;
export const LENGTH_BANDS = ['under-1-day', '1-2-days', '3-7-days', 'over-7-days'] as const;
export const TERMINAL_TYPES = ['desktop', 'set-top', 'headless'] as const;

export const AgeBand = z.enum(AGE_BANDS);
export const Region = z.enum(REGIONS);
export type AgeBand = (typeof AGE_BANDS)[number];
export type Region = (typeof REGIONS)[number];
export type DayPart = (typeof DAY_PARTS)[number];
export type LengthBand = (typeof LENGTH_BANDS)[number];
export type TerminalType = (typeof TERMINAL_TYPES)[number];

/** The predetermined items one order is classified into. */
export interface Classification {
  genre: string;
  ageBand: AgeBand;
  region: Region;
  dayPart: DayPart;
  lengthBand: LengthBand;
  terminalType: TerminalType;
}

export interface ClassificationInput {
  genre: string;
  ageBand: AgeBand | null;
  region: Region | null;
  /** When the rental window opens (ms since the epoch). */
  startsAt: number;
  /** The hour offset of the place the day-part is judged in (the server's time zone by default). */
  utcOffsetMinutes: number;
  periodSeconds: number;
  terminalKind: 'headless' | 'desktop' | 'set-top' | 'browser';
}

/** Morning 06–12, afternoon 12–18, evening 18–23, night 23–06 (local hours). */
export function dayPartOf(startsAt: number, utcOffsetMinutes: number): DayPart {
  const hour = new Date(startsAt + utcOffsetMinutes * 60_000).getUTCHours();
  if (hour >= 6 && hour < 12) return 'morning';
  if (hour >= 12 && hour < 18) return 'afternoon';
  if (hour >= 18 && hour < 23) return 'evening';
  return 'night';
}

/** Under a day, 1–2 days (up to and including 48 h), 3–7 days (up to 7 × 24 h), longer. */
export function lengthBandOf(periodSeconds: number): LengthBand {
  const hours = periodSeconds / 3600;
  if (hours < 24) return 'under-1-day';
  if (hours <= 48) return '1-2-days';
  if (hours <= 168) return '3-7-days';
  return 'over-7-days';
}

/** A browser player counts as a desktop terminal: that is where it runs. */
export function terminalTypeOf(kind: ClassificationInput['terminalKind']): TerminalType {
  return kind === 'browser' ? 'desktop' : kind;
}

export function classify(input: ClassificationInput): Classification {
  return {
    genre: input.genre.trim().toLowerCase() || 'unknown',
    ageBand: input.ageBand ?? 'unknown',
    region: input.region ?? 'unknown',
    dayPart: dayPartOf(input.startsAt, input.utcOffsetMinutes),
    lengthBand: lengthBandOf(input.periodSeconds),
    terminalType: terminalTypeOf(input.terminalKind),
  };
}
