import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AdCandidate, eligible, pickAd } from '../../shared/ad-targeting.ts';

const ad = (adId: string, over: Partial<AdCandidate> = {}): AdCandidate => ({
  adId,
  segments: {},
  startsAt: 1000,
  endsAt: 2000,
  weight: 1,
  ...over,
});

test('flight dates: not before the start, never at or after the end', () => {
  assert.equal(eligible(ad('a'), {}, 999), false);
  assert.equal(eligible(ad('a'), {}, 1000), true);
  assert.equal(eligible(ad('a'), {}, 1999), true);
  assert.equal(eligible(ad('a'), {}, 2000), false);
  assert.equal(pickAd([ad('expired', { endsAt: 1500 })], {}, 1600), undefined);
});

test('every targeted item must match; untargeted items match anyone', () => {
  const drama = ad('d', { segments: { genre: ['drama'], region: ['west', 'north'] } });
  assert.equal(eligible(drama, { genre: 'drama', region: 'west' }, 1500), true);
  assert.equal(eligible(drama, { genre: 'drama', region: 'south' }, 1500), false);
  assert.equal(eligible(drama, { genre: 'drama' }, 1500), false, 'an unknown value does not match a target');
  assert.equal(eligible(ad('any'), { genre: 'drama' }, 1500), true);
});

test('the pick is weighted among eligible ads and never an expired one', () => {
  const ads = [
    ad('heavy', { weight: 3 }),
    ad('light', { weight: 1 }),
    ad('old', { weight: 100, endsAt: 1200 }),
  ];
  assert.equal(pickAd(ads, {}, 1500, () => 0)?.adId, 'heavy');
  assert.equal(pickAd(ads, {}, 1500, () => 0.74)?.adId, 'heavy');
  assert.equal(pickAd(ads, {}, 1500, () => 0.76)?.adId, 'light');
  const seen = new Set(Array.from({ length: 200 }, (_, i) => pickAd(ads, {}, 1500, () => i / 200)?.adId));
  assert.deepEqual([...seen].sort(), ['heavy', 'light']);
});
