import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fillRandom } from '../../server/random-pool.ts';

test('the random pool hands out every byte once, across refills, and fills large requests directly', () => {
  // 3,000 draws of 10 bytes is 30 KB: the 16 KiB pool refills once at least.
  const seen = new Set<string>();
  const into = Buffer.alloc(16);
  for (let n = 0; n < 3000; n++) {
    into.fill(0);
    fillRandom(into, 3, 10);
    assert.equal(
      into.readUInt16BE(0) + into.readUInt8(2) + into.readUInt16BE(13) + into.readUInt8(15),
      0,
      'outside the range untouched',
    );
    seen.add(into.subarray(3, 13).toString('hex'));
  }
  assert.equal(seen.size, 3000, 'no draw repeats another');
  const big = Buffer.alloc(40_000);
  fillRandom(big);
  // 40,000 random bytes hold every byte value; zeros left by a skipped fill would dominate.
  assert.ok(new Set(big).size === 256);
  assert.ok(big.filter((b) => b === 0).length < 400);
});
