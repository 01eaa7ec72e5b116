/** Background writes a stopping server waits for: failures reported, not thrown; late ones waited for too. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackgroundWork } from '../../server/background-work.ts';

test('settled waits for every write under way, those started meanwhile too; a failure goes to its handler', async () => {
  const writes = new BackgroundWork();
  const done: string[] = [];
  const errors: unknown[] = [];
  const later = (ms: number, what: string, fail = false) =>
    new Promise<void>((resolve, reject) =>
      setTimeout(() => {
        done.push(what);
        if (fail) reject(new Error(what));
        else resolve();
      }, ms),
    );
  writes.add(later(30, 'first'), (e) => errors.push(e));
  writes.add(later(10, 'failing', true), (e) => errors.push(e));
  // Started while the first two are under way, ending after them: settled waits for it as well.
  setTimeout(() => writes.add(later(40, 'late'), (e) => errors.push(e)), 20);
  await writes.settled();
  assert.deepEqual(done, ['failing', 'first', 'late']);
  assert.deepEqual(
    errors.map((e) => (e as Error).message),
    ['failing'],
  );
  await writes.settled(); // nothing under way: at once
});
