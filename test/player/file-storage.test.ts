/** The headless terminal's folder storage under concurrent writers. */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import { FileStorage } from '../../player/headless/file-storage.ts';
import { cleanup, tempDir } from '../harness.ts';

afterEach(cleanup);

test('state saved from two places at once: no lost write, no error, the last save wins', async () => {
  // Two links (key and content server) save the trusted time together on every reconnect.
  const dir = tempDir('rd-fs-');
  const s = new FileStorage(dir);
  await Promise.all(
    Array.from({ length: 50 }, (_, i) => s.saveState({ highWater: i, serverPublicKey: null })),
  );
  assert.equal((await s.loadState()).highWater, 49);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left behind',
  );
});
