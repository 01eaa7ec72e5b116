/**
 * Objects the server makes for every order keep one hidden class. In V8 11 (Node 20), properties
 * added after an object spread (`{ ...o, title }`) made a new map and descriptor array for every
 * object, in the old generation: 3-4 MB a second at 1,000 orders/s and most of the server's major
 * collections (BENCHMARKS.md). The probe needs `--allow-natives-syntax`, so it runs in a child.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

test('order views and claimed jobs share one hidden class from order to order', (t) => {
  const out = execFileSync(
    process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', join(import.meta.dirname, 'hidden-class-probe.ts')],
    { encoding: 'utf8' },
  );
  const r = JSON.parse(out.trim().split('\n').pop() as string) as Record<string, boolean>;
  t.diagnostic(
    `this V8 ${r.spreadThenAdd ? 'keeps' : 'does not keep'} one class for properties added after a spread`,
  );
  assert.equal(r.named, true, "the store's order views (namedOrder)");
  assert.equal(r.claimedJobs, true, 'jobs taken at once by this instance (jobOf)');
});
