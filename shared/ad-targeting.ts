/**
 * Which ad a terminal is shown (claims 19/25): ads target segments over the classification items;
 * an ad is eligible only inside its flight dates and only if every item it targets matches the
 * customer; among eligible ads the pick is weighted. Pure, so it is tested on edge values.
 */
import type { Classification } from './classification.ts';

export type Segments = Partial<Record<keyof Classification, string[]>>;

export interface AdCandidate {
  adId: string;
  segments: Segments;
  startsAt: number;
  endsAt: number;
  weight: number;
}

export function eligible(ad: AdCandidate, customer: Partial<Classification>, now: number): boolean {
  if (now < ad.startsAt || now >= ad.endsAt || ad.weight <= 0) return false;
  return Object.entries(ad.segments).every(([item, values]) => {
    if (!values || values.length === 0) return true;
    const mine = customer[item as keyof Classification];
    return mine !== undefined && values.includes(mine);
  });
}

/** A weighted pick among the eligible ads, or undefined; `random` is injectable for tests. */
export function pickAd<T extends AdCandidate>(
  ads: T[],
  customer: Partial<Classification>,
  now: number,
  random: () => number = Math.random,
): T | undefined {
  const pool = ads.filter((a) => eligible(a, customer, now));
  const total = pool.reduce((n, a) => n + a.weight, 0);
  let r = random() * total;
  for (const a of pool) {
    r -= a.weight;
    if (r < 0) return a;
  }
  return pool[pool.length - 1];
}
