/** The headless terminal's folder storage under concurrent writers. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { FileStorage } from '../../player/headless/file-storage.ts';
import { openReadWrite, replaceFile } from '../../player/headless/file-worker.ts';
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

test('the file worker replaces a file whole in a folder it makes, opens content, and reports failures by code', async () => {
  const dir = tempDir('rd-fw-');
  const folder = join(dir, 'rentals', 'a', 'b');
  await replaceFile(join(folder, 'rental.json'), '{"have":1}', true, folder);
  assert.equal(readFileSync(join(folder, 'rental.json'), 'utf8'), '{"have":1}');
  await replaceFile(join(folder, 'rental.json'), new Uint8Array([123, 125]), false);
  assert.equal(readFileSync(join(folder, 'rental.json'), 'utf8'), '{}');
  assert.deepEqual(readdirSync(folder), ['rental.json'], 'no temporary file left behind');
  // The descriptor the worker opened is this process's: written and read here, never truncated.
  const fd = await openReadWrite(join(folder, 'content.enc'));
  writeSync(fd, 'abc', 0);
  closeSync(fd);
  closeSync(await openReadWrite(join(folder, 'content.enc')));
  assert.equal(readFileSync(join(folder, 'content.enc'), 'utf8'), 'abc');
  // A folder that cannot be made (a file is in the way): the call fails with the system's code.
  writeFileSync(join(dir, 'blocker'), '');
  await assert.rejects(
    replaceFile(join(dir, 'blocker', 'x', 'r.json'), '{}', true, join(dir, 'blocker', 'x')),
    {
      code: 'ENOTDIR',
    },
  );
  // The worker keeps serving after a failure.
  await replaceFile(join(folder, 'licence.json'), '{"v":1}', true);
  assert.equal(readFileSync(join(folder, 'licence.json'), 'utf8'), '{"v":1}');
});

test('close waits for the files being written, so a stopped terminal leaves nothing half-made behind', async () => {
  const dir = tempDir('rd-fs-');
  const s = new FileStorage(dir);
  const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a12';
  const writes = Promise.all(
    Array.from({ length: 20 }, (_, i) => s.saveState({ highWater: i, serverPublicKey: null })),
  );
  const licence = s.putLicence(orderId, { data: '{}', sig: 'x' });
  await s.close(); // asked for at once, before any of the writes is done
  assert.deepEqual(
    readdirSync(join(dir, 'rentals', orderId)),
    ['licence.json'],
    'the licence is in place, in the folder made for it, with no temporary file',
  );
  assert.equal(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).highWater, 19);
  await Promise.all([writes, licence]);
});

test('descriptors the file worker opens are the event loop’s: closed here and opened again without a warning', () => {
  // Run apart: a warning raised in the worker goes to the process's standard error, not to 'warning'.
  const dir = tempDir('rd-fw-');
  const worker = new URL('../../player/headless/file-worker.ts', import.meta.url).href;
  const script = `import { closeSync } from 'node:fs';
    const { openReadWrite } = await import(${JSON.stringify(worker)});
    for (let i = 0; i < 20; i++) closeSync(await openReadWrite(${JSON.stringify(dir)} + '/f' + (i % 2)));
    console.log('done');`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.stdout.trim(), 'done', r.stderr);
  // A worker that tracks them warns "opened in unmanaged mode twice" (and would close them if it stopped).
  assert.doesNotMatch(r.stderr, /unmanaged mode/);
});
