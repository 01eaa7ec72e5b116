import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify, dayPartOf, lengthBandOf, terminalTypeOf } from '../../shared/classification.ts';

const at = (h: number, m = 0) => Date.UTC(2026, 10, 25, h, m);

test('day-part boundaries, in the given time zone', () => {
  assert.equal(dayPartOf(at(5, 59), 0), 'night');
  assert.equal(dayPartOf(at(6), 0), 'morning');
  assert.equal(dayPartOf(at(11, 59), 0), 'morning');
  assert.equal(dayPartOf(at(12), 0), 'afternoon');
  assert.equal(dayPartOf(at(18), 0), 'evening');
  assert.equal(dayPartOf(at(22, 59), 0), 'evening');
  assert.equal(dayPartOf(at(23), 0), 'night');
  assert.equal(dayPartOf(at(0), 0), 'night');
  // 17:30 UTC is 18:30 at UTC+1: evening there.
  assert.equal(dayPartOf(at(17, 30), 60), 'evening');
  assert.equal(dayPartOf(at(1), -120), 'night');
});

test('length bands at their edges', () => {
  assert.equal(lengthBandOf(10), 'under-1-day');
  assert.equal(lengthBandOf(24 * 3600 - 1), 'under-1-day');
  assert.equal(lengthBandOf(24 * 3600), '1-2-days');
  assert.equal(lengthBandOf(48 * 3600), '1-2-days');
  assert.equal(lengthBandOf(48 * 3600 + 1), '3-7-days');
  assert.equal(lengthBandOf(7 * 86400), '3-7-days');
  assert.equal(lengthBandOf(7 * 86400 + 1), 'over-7-days');
  assert.equal(lengthBandOf(30 * 86400), 'over-7-days');
});

test('terminal types and unknowns', () => {
  assert.equal(terminalTypeOf('browser'), 'desktop');
  assert.equal(terminalTypeOf('set-top'), 'set-top');
  assert.deepEqual(
    classify({
      genre: '  Science Fiction ',
      ageBand: null,
      region: null,
      startsAt: at(20),
      utcOffsetMinutes: 0,
      periodSeconds: 48 * 3600,
      terminalKind: 'headless',
    }),
    {
      genre: 'science fiction',
      ageBand: 'unknown',
      region: 'unknown',
      dayPart: 'evening',
      lengthBand: '1-2-days',
      terminalType: 'headless',
    },
  );
  assert.equal(
    classify({
      genre: '',
      ageBand: '25-34',
      region: 'west',
      startsAt: at(9),
      utcOffsetMinutes: 0,
      periodSeconds: 60,
      terminalKind: 'desktop',
    }).genre,
    'unknown',
  );
});
