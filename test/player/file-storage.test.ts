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

test('a record put without a sync is read back at once; a synced one replaces it on disk', async () => {
  const dir = tempDir('rd-fs-');
  const s = new FileStorage(dir);
  const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a11';
  const rental = {
    orderId,
    itemNumber: 1,
    title: 'T',
    mimeType: 'video/webm',
    size: 10,
    chunkSize: 65536,
    totalChunks: 1,
    have: 0,
    notBefore: 0,
    notAfter: Date.now() + 60_000,
    expired: false,
  };
  await s.putRental(rental, { durable: false });
  assert.deepEqual(await s.rental(orderId), rental);
  assert.deepEqual(
    (await s.rentals()).map((r) => r.orderId),
    [orderId],
  );
  // Not on disk: another process (or this one after a crash) does not see it.
  assert.equal(await new FileStorage(dir).rental(orderId), undefined);
  // The first chunk makes the folder; the synced record with it is what a restart finds.
  await s.writeChunk(rental, 0, new Uint8Array(10 + 17 + 24));
  await s.putRental({ ...rental, have: 1 });
  assert.equal((await new FileStorage(dir).rental(orderId))?.have, 1);
  assert.equal((await s.rental(orderId))?.have, 1);
  await s.close();
});
