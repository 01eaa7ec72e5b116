/**
 * A big title's content written past the page cache (direct-writer.ts) and read past it for
 * decryption (direct-reader.ts), through the terminal's folder storage.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, type TestContext, test } from 'node:test';
import {
  DIRECT_MIN_BYTES,
  DIRECT_SLOTS,
  directWritesBroken,
  inMemory,
} from '../../player/headless/direct-writer.ts';
import { FileStorage } from '../../player/headless/file-storage.ts';
import { cipherChunkLength } from '../../shared/crypto.ts';
import { cleanup } from '../harness.ts';
import { CHUNK_SIZE, ciphersOf, rentalOf } from './rental-fixtures.ts';

afterEach(cleanup);
const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Whether the file system holding `dir` takes O_DIRECT (ramfs does not; tmpfs does since Linux 6.6). */
function takesDirect(dir: string): boolean {
  const probe = join(dir, '.direct-probe');
  writeFileSync(probe, '');
  try {
    closeSync(openSync(probe, constants.O_WRONLY | constants.O_DIRECT));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { force: true });
  }
}
/** A fresh folder under `parent`, removed after the test. */
function folderIn(parent: string): string {
  const d = mkdtempSync(join(parent, 'rd-direct-'));
  made.push(d);
  return d;
}
/**
 * A folder on a file system that takes O_DIRECT: the temporary folder's, or else the checkout's;
 * undefined, with the test skipped and saying why, if neither does.
 */
function directFolder(t: TestContext): string | undefined {
  for (const parent of [tmpdir(), process.cwd()]) {
    const d = folderIn(parent);
    if (takesDirect(d)) return d;
  }
  t.skip('no file system here takes O_DIRECT (the temporary folder and the checkout both refused it)');
  return undefined;
}
/** Bytes of `file` in the page cache (util-linux fincore), or undefined without it. */
function cachedBytes(file: string): number | undefined {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : undefined;
}

const stride = cipherChunkLength(CHUNK_SIZE);

/**
 * Write `ciphers[from..to)` in batches of 1 to 16 chunks, as the terminal does (the buffers given
 * are overwritten once each write resolves, as the socket's are), with a sync started every 20
 * chunks beside the writing; resolves once the last sync is done.
 */
async function writeRange(
  s: FileStorage,
  r: ReturnType<typeof rentalOf>,
  ciphers: Uint8Array[],
  from: number,
  to: number,
) {
  const syncs: Promise<void>[] = [];
  let sinceSync = 0;
  for (let i = from, n = 1; i < to; n = (n % 16) + 1) {
    const batch = ciphers.slice(i, Math.min(to, i + n)).map((c) => Uint8Array.from(c));
    await s.writeChunks(r, i, batch);
    for (const b of batch) b.fill(0xee); // the socket reuses its buffers
    i += batch.length;
    sinceSync += batch.length;
    if (sinceSync >= 20) {
      syncs.push(s.flush(r.orderId));
      sinceSync = 0;
    }
  }
  syncs.push(s.flush(r.orderId));
  await Promise.all(syncs);
}

test('a big title is written past the page cache, synced as it goes, resumed mid-block, and reads back byte for byte', async (t) => {
  const dir = directFolder(t);
  if (!dir) return;
  const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6b01';
  const size = DIRECT_MIN_BYTES + 3 * CHUNK_SIZE + 123;
  const r = rentalOf(orderId, size);
  const ciphers = ciphersOf(size, 5);
  const s = new FileStorage(dir);
  const half = 70; // 70 × 65,577 bytes: not on a 4 KiB boundary
  await writeRange(s, r, ciphers, 0, half);
  // What was synced reads back while the download goes on.
  const early = await s.readChunks(r, half - 3, 3);
  assert.deepEqual(
    early.map((c) => Buffer.from(c)),
    ciphers.slice(half - 3, half).map((c) => Buffer.from(c)),
  );
  await s.close();
  // The terminal restarted: the rest, from the middle of a block, by a new storage.
  const again = new FileStorage(dir);
  await writeRange(again, r, ciphers, half, ciphers.length);
  const file = join(dir, 'rentals', orderId, 'content.enc');
  const cached = cachedBytes(file);
  if (cached === undefined) t.diagnostic('fincore is missing: the page cache is not checked');
  else
    assert.ok(
      cached < size / 8,
      `direct writes leave the title out of the page cache (${cached} of ${size} bytes cached)`,
    );
  await again.close();
  assert.equal(directWritesBroken(), undefined, 'the kernel took the aligned writes');
  assert.equal(statSync(file).size, (ciphers.length - 1) * stride + (ciphers.at(-1)?.length ?? 0));
  assert.deepEqual(readFileSync(file), Buffer.concat(ciphers), 'the chunks, back to back from the start');
});

test('more big downloads at once than staging slots: the rest are written the usual way, all to the same bytes', async (t) => {
  const dir = directFolder(t);
  if (!dir) return;
  const s = new FileStorage(dir);
  const size = DIRECT_MIN_BYTES + 1000;
  const titles = Array.from({ length: 10 }, (_, k) => ({
    r: rentalOf(`3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6c${String(k).padStart(2, '0')}`, size),
    ciphers: ciphersOf(size, 11 + k),
  }));
  await Promise.all(titles.map(({ r, ciphers }) => writeRange(s, r, ciphers, 0, ciphers.length)));
  await s.close();
  const cached = titles.map(({ r }) => cachedBytes(join(dir, 'rentals', r.orderId, 'content.enc')));
  if (cached[0] !== undefined) {
    const direct = cached.filter((c) => (c as number) < size / 8).length;
    assert.ok(
      direct >= 1 && direct <= DIRECT_SLOTS,
      `${direct} of 10 written directly: at most the ${DIRECT_SLOTS} slots`,
    );
  }
  for (const { r, ciphers } of titles)
    assert.deepEqual(readFileSync(join(dir, 'rentals', r.orderId, 'content.enc')), Buffer.concat(ciphers));
});

test("each terminal's storage has its own slots: one with all of its slots taken leaves another's direct", async (t) => {
  const dir = directFolder(t);
  if (!dir) return;
  if (spawnSync('fincore', ['--version']).status !== 0)
    return t.skip('fincore is missing: nothing here tells a direct write from another');
  // Two devices in one process (as the bench's farm runs them): the first is mid-way through as many
  // big downloads as it has slots, which it holds until their last chunks are synced.
  const busy = new FileStorage(join(dir, 'busy'));
  const size = DIRECT_MIN_BYTES + 2000;
  const held = Array.from({ length: DIRECT_SLOTS }, (_, k) => ({
    r: rentalOf(`3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a${String(k).padStart(2, '0')}`, size),
    ciphers: ciphersOf(size, 51 + k),
  }));
  await Promise.all(held.map(({ r, ciphers }) => writeRange(busy, r, ciphers, 0, 40)));
  const other = new FileStorage(join(dir, 'other'));
  const r = rentalOf('3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6a99', size);
  const ciphers = ciphersOf(size, 59);
  await writeRange(other, r, ciphers, 0, ciphers.length);
  const file = join(dir, 'other', 'rentals', r.orderId, 'content.enc');
  const cached = cachedBytes(file) as number;
  assert.ok(cached < size / 8, `the other device wrote directly (${cached} of ${size} bytes cached)`);
  assert.deepEqual(readFileSync(file), Buffer.concat(ciphers));
  await Promise.all(held.map(({ r, ciphers }) => writeRange(busy, r, ciphers, 40, ciphers.length)));
  await Promise.all([busy.close(), other.close()]);
});

test('a finished download gives its slot back: one big title after another, each written directly', async (t) => {
  const dir = directFolder(t);
  if (!dir) return;
  const s = new FileStorage(dir);
  const size = DIRECT_MIN_BYTES + 333;
  for (let k = 0; k < DIRECT_SLOTS + 2; k++) {
    const r = rentalOf(`3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6f${String(k).padStart(2, '0')}`, size);
    const ciphers = ciphersOf(size, 31 + k);
    await writeRange(s, r, ciphers, 0, ciphers.length);
    const file = join(dir, 'rentals', r.orderId, 'content.enc');
    const cached = cachedBytes(file);
    if (cached !== undefined)
      assert.ok(cached < size / 8, `title ${k + 1}: ${cached} of ${size} bytes cached`);
    // Its file stays open for reading, and reads back whole.
    assert.deepEqual(
      Buffer.concat((await s.readChunks(r, 0, ciphers.length)).map((c) => Buffer.from(c))),
      Buffer.concat(ciphers),
    );
  }
  await s.close();
});

test('the last chunks appended while a sync is under way are written before the slot goes back', async (t) => {
  const dir = directFolder(t);
  if (!dir) return;
  const s = new FileStorage(dir);
  const size = DIRECT_MIN_BYTES + 4321;
  const r = rentalOf('3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6f99', size);
  const ciphers = ciphersOf(size, 41);
  const rest = ciphers.length - 5;
  await writeRange(s, r, ciphers, 0, rest);
  // The terminal syncs beside its writing: the title's end arrives while a sync runs.
  const syncing = s.flush(r.orderId);
  await s.writeChunks(r, rest, ciphers.slice(rest));
  await syncing;
  await s.flush(r.orderId);
  const file = join(dir, 'rentals', r.orderId, 'content.enc');
  assert.deepEqual(readFileSync(file), Buffer.concat(ciphers));
  await s.close();
});

/**
 * Read a stored title back as the player's decryption does (terminal-core.ts): runs of 16 chunks
 * into two buffers from the storage, lent in turn. Each run is copied before the next read reuses
 * its buffer.
 */
async function readAsPlayer(s: FileStorage, r: ReturnType<typeof rentalOf>): Promise<Buffer> {
  const run = 16;
  const rooms = [0, 1].map(() => s.readBuffer(r, Math.min(run, r.totalChunks) * stride));
  const out: Buffer[] = [];
  for (let first = 0, k = 0; first < r.totalChunks; first += run, k++) {
    const count = Math.min(run, r.totalChunks - first);
    const chunks = await s.readChunks(r, first, count, rooms[k % 2]);
    out.push(...chunks.map((c) => Buffer.from(c)));
    if (chunks.length < count) break; // the rest is missing
  }
  return Buffer.concat(out);
}

test('a big title is read for playing past the page cache, run by run, to the same bytes', async (t) => {
  const dir = directFolder(t);
  if (!dir) return;
  if (spawnSync('fincore', ['--version']).status !== 0)
    return t.skip('fincore is missing: nothing here tells a direct read from another');
  const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6e01';
  // Runs of 16 chunks (16 × 65,577 bytes) start off the 4 KiB boundaries; the last chunk is short.
  const size = DIRECT_MIN_BYTES + 5 * CHUNK_SIZE + 777;
  const r = rentalOf(orderId, size);
  const ciphers = ciphersOf(size, 61);
  const s = new FileStorage(dir);
  await writeRange(s, r, ciphers, 0, ciphers.length);
  await s.close();
  const file = join(dir, 'rentals', orderId, 'content.enc');
  const before = cachedBytes(file) as number;
  assert.ok(before < size / 8, `written directly (${before} of ${size} bytes cached)`);
  // A terminal started again plays it.
  const player = new FileStorage(dir);
  assert.deepEqual(await readAsPlayer(player, r), Buffer.concat(ciphers));
  const after = cachedBytes(file) as number;
  assert.ok(after < size / 8, `read past the page cache (${after} of ${size} bytes cached)`);
  // Plain memory (not the storage's) is read into the usual way, to the same bytes.
  const plain = new Uint8Array(4 * stride);
  const some = await player.readChunks(r, 17, 4, plain);
  assert.deepEqual(
    some.map((c) => Buffer.from(c)),
    ciphers.slice(17, 21).map((c) => Buffer.from(c)),
  );
  await player.close();
  // A file cut short mid-chunk: the chunks before the cut, and none after.
  truncateSync(file, 40 * stride + 100);
  const cut = new FileStorage(dir);
  assert.deepEqual(await readAsPlayer(cut, r), Buffer.concat(ciphers.slice(0, 40)));
  await cut.close();
});

test('in a folder in memory (tmpfs), a big title is written the usual way, to the same bytes', async (t) => {
  const parent = ['/dev/shm', tmpdir()].find((p) => existsSync(p) && inMemory(p));
  if (!parent) return t.skip('no tmpfs here (none at /dev/shm, and the temporary folder is on a disk)');
  const dir = folderIn(parent);
  const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6d01';
  const size = DIRECT_MIN_BYTES + 77;
  const r = rentalOf(orderId, size);
  const ciphers = ciphersOf(size, 9);
  const s = new FileStorage(dir);
  await writeRange(s, r, ciphers, 0, 70);
  // Half-way, no direct descriptor is open beside the ordinary one (a direct writer keeps one).
  const fds = readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).endsWith(join(orderId, 'content.enc'));
    } catch {
      return false;
    }
  });
  assert.equal(fds.length, 1, 'one descriptor for the content file: no direct one beside it');
  await writeRange(s, r, ciphers, 70, ciphers.length);
  await s.close();
  assert.deepEqual(readFileSync(join(dir, 'rentals', orderId, 'content.enc')), Buffer.concat(ciphers));
});

test('on a file system that refuses O_DIRECT (ramfs), a big title is written the usual way, to the same bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rd-ramfs-'));
  // ramfs has no direct I/O at all: opening a file with O_DIRECT there fails with EINVAL.
  const mounted = spawnSync('mount', ['-t', 'ramfs', 'ramfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return t.skip(
      `cannot mount a ramfs here (root only): ${(mounted.stderr || mounted.error?.message || '').trim()}`,
    );
  }
  const s = new FileStorage(dir);
  try {
    assert.equal(takesDirect(dir), false, 'ramfs refuses O_DIRECT');
    const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6d02';
    const size = DIRECT_MIN_BYTES + 99;
    const r = rentalOf(orderId, size);
    const ciphers = ciphersOf(size, 13);
    assert.equal(s.directWritesRefused, false, 'not known in advance: ramfs is not tmpfs');
    await writeRange(s, r, ciphers, 0, ciphers.length);
    assert.equal(s.directWritesRefused, true, 'the refusal is remembered: no O_DIRECT open per write');
    assert.equal(directWritesBroken(), undefined, 'one file system refusing turns nothing off elsewhere');
    await s.close();
    assert.deepEqual(readFileSync(join(dir, 'rentals', orderId, 'content.enc')), Buffer.concat(ciphers));
    // A terminal started again does not know yet, and tries to read it past the page cache.
    const again = new FileStorage(dir);
    try {
      assert.deepEqual(await readAsPlayer(again, r), Buffer.concat(ciphers), 'read the usual way instead');
      assert.equal(again.directWritesRefused, true, 'the refusal is remembered for reads too');
    } finally {
      await again.close();
    }
  } finally {
    await s.close().catch(() => undefined); // open files would keep the mount busy
    spawnSync('umount', ['--lazy', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a direct write that fails fails the sync after it, and the next attempt writes the title afresh', async (t) => {
  const dir = directFolder(t);
  if (!dir) return;
  const orderId = '3f2b8a8e-5a7d-4a51-9a51-0f4c2b1f6e01';
  const size = DIRECT_MIN_BYTES + 5000;
  const r = rentalOf(orderId, size);
  const ciphers = ciphersOf(size, 21);
  const s = new FileStorage(dir);
  // Past the largest file the file system allows (16 TiB on ext4): the kernel refuses the write (EFBIG).
  const far = Math.ceil(2 ** 45 / stride);
  await s.writeChunks(r, far, ciphers.slice(0, 40)).catch(() => undefined);
  await assert.rejects(s.flush(orderId), (err: NodeJS.ErrnoException) => {
    assert.match(String(err.code), /EFBIG|EINVAL|ENOSPC/);
    return true;
  });
  // The failed writer let the file go: the download, started again, stores the title.
  await writeRange(s, r, ciphers, 0, ciphers.length);
  await s.close();
  const file = join(dir, 'rentals', orderId, 'content.enc');
  assert.deepEqual(readFileSync(file), Buffer.concat(ciphers));
});
