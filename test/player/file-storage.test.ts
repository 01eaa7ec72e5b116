/** The headless terminal's folder storage under concurrent writers. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { FileStorage } from '../../player/headless/file-storage.ts';
import { openReadWrite, replaceFile } from '../../player/headless/file-worker.ts';
import { cipherChunkLength } from '../../shared/crypto.ts';
import { cleanup, tempDir } from '../harness.ts';
import { CHUNK_SIZE, ciphersOf, rentalOf as wholeRental } from './rental-fixtures.ts';

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

test('rentals are found whether the folder index holds them (listed at the start, made since) or outgrew its bound', async () => {
  const dir = tempDir('rd-fs-');
  const ids = [1, 2, 3, 4, 5].map((i) => `3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a0${i}`);
  const unknown = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a99';
  const a = new FileStorage(dir);
  await a.putRental(wholeRental(ids[0] as string, 10));
  await a.putLicence(ids[0] as string, { data: 'd', sig: 's' });
  // Listed when made: the rental and its licence, and nothing for an order it never had.
  const b = new FileStorage(dir);
  assert.equal((await b.rental(ids[0] as string))?.orderId, ids[0]);
  assert.deepEqual(await b.licence(ids[0] as string), { data: 'd', sig: 's' });
  assert.equal(await b.rental(unknown), undefined);
  assert.equal(await b.licence(unknown), undefined);
  assert.equal(await b.preroll(unknown), undefined);
  assert.deepEqual(await b.readChunks(wholeRental(unknown, 10), 0, 1), []);
  await assert.rejects(b.rental('../escape'), /invalid order id/);
  // Made since by this storage: known.
  await b.putRental(wholeRental(ids[1] as string, 10));
  assert.equal((await b.rental(ids[1] as string))?.orderId, ids[1]);
  // An index of two, outgrown: from then on the disk is asked, and finds what another wrote.
  const c = new FileStorage(dir, 2);
  await a.putRental(wholeRental(ids[2] as string, 10));
  await c.putRental(wholeRental(ids[3] as string, 10));
  await c.putRental(wholeRental(ids[4] as string, 10));
  for (const id of ids) assert.equal((await c.rental(id))?.orderId, id);
  assert.equal(await c.rental(unknown), undefined);
  for (const s of [a, b, c]) await s.close();
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

test('a small title that arrived whole is stored in one step; one with its file open, or too big, the long way, to the same bytes', async () => {
  const dir = tempDir('rd-fs-');
  const s = new FileStorage(dir);
  const stride = cipherChunkLength(CHUNK_SIZE);
  const rentalOf = (orderId: string, size: number) =>
    wholeRental(orderId, size, Math.ceil(size / CHUNK_SIZE));
  const openFds = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : -1);
  const check = async (orderId: string, size: number, seed: number) => {
    const ciphers = ciphersOf(size, seed);
    const before = openFds();
    await s.storeWhole(rentalOf(orderId, size), ciphers);
    const file = readFileSync(join(dir, 'rentals', orderId, 'content.enc'));
    assert.deepEqual(file, Buffer.concat(ciphers), 'the chunks, back to back from the start');
    assert.equal(file.length, (ciphers.length - 1) * stride + (ciphers.at(-1)?.length ?? 0));
    // What a restart finds: the record says all of it is there, and every chunk reads back.
    const again = new FileStorage(dir);
    const r = await again.rental(orderId);
    assert.equal(r?.have, r?.totalChunks);
    assert.deepEqual(
      (await again.readChunks(r as NonNullable<typeof r>, 0, ciphers.length)).map((c) => Buffer.from(c)),
      ciphers.map((c) => Buffer.from(c)),
    );
    await again.close();
    assert.deepEqual(
      readdirSync(join(dir, 'rentals', orderId)).sort(),
      ['content.enc', 'rental.json'],
      'no temporary file left behind',
    );
    return { before, after: openFds() };
  };
  // A one-chunk title: in one step on the file worker, which leaves no descriptor open here.
  const small = await check('3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a21', 1000, 1);
  if (small.before >= 0) assert.equal(small.after, small.before, 'the one-step store closes its file');
  // Five chunks (over the one-step bound): written here, synced, recorded; the file stays open for more.
  const big = await check('3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a22', 4 * CHUNK_SIZE + 5, 2);
  if (big.before >= 0) assert.equal(big.after, big.before + 1, 'the long way keeps the content file open');
  // A title whose content file is open here already (a chunk was written first) goes the long way too.
  const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a23';
  await s.writeChunk(rentalOf(orderId, 1000), 0, new Uint8Array(cipherChunkLength(1000)));
  await check(orderId, 1000, 3);
  // An order id that is not one cannot name a folder.
  await assert.rejects(s.storeWhole(rentalOf('../x', 1000), ciphersOf(1000, 4)), /invalid order id/);
  await s.close();
});
