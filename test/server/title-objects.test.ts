/**
 * Title storage: AWS's published Signature V4 example, and the object-store path (upload, ranged
 * reads) against a small S3-speaking server on loopback that checks every request's signature.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { DiskTitles, S3Titles, signV4 } from '../../server/content/title-objects.ts';
import { cleanup, defer, tempDir } from '../harness.ts';

afterEach(cleanup);

const EXAMPLE = {
  region: 'us-east-1',
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

test('Signature V4 matches the GET Object example in the S3 documentation', () => {
  const headers = signV4(
    {
      method: 'GET',
      url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'),
      headers: { Range: 'bytes=0-9' },
      payloadHash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    },
    EXAMPLE,
    new Date('2013-05-24T00:00:00Z'),
  );
  assert.equal(
    headers.authorization,
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  );
});

test('a title kept in an S3-compatible bucket is uploaded once and read back by byte range', async () => {
  const objects = new Map<string, Buffer>();
  const seen: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    // Every request must carry a signature this server can reproduce with the shared secret.
    const signed = signV4(
      {
        method: req.method ?? 'GET',
        url: new URL(`http://${req.headers.host}${req.url}`),
        headers: Object.fromEntries(
          (['range', 'content-length'] as const)
            .filter((h) => req.headers[h])
            .map((h) => [h, String(req.headers[h])]),
        ),
        payloadHash: String(req.headers['x-amz-content-sha256']),
      },
      EXAMPLE,
      new Date(
        String(req.headers['x-amz-date']).replace(
          /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/,
          '$1-$2-$3T$4:$5:$6Z',
        ),
      ),
    );
    if (signed.authorization !== req.headers.authorization) return res.writeHead(403).end();
    seen.push(`${req.method} ${url.pathname} ${req.headers.range ?? ''}`.trim());
    if (req.method === 'PUT') {
      const parts: Buffer[] = [];
      req.on('data', (d) => parts.push(d));
      req.on('end', () => {
        objects.set(url.pathname, Buffer.concat(parts));
        res.writeHead(200).end();
      });
      return;
    }
    const body = objects.get(url.pathname);
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range));
    if (!body || !m) return res.writeHead(404).end();
    res.writeHead(206).end(body.subarray(Number(m[1]), Number(m[2]) + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  defer(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;

  const titles = new S3Titles({ url: new URL(`http://127.0.0.1:${port}/rental/titles`), ...EXAMPLE });
  const dir = tempDir();
  const file = join(dir, 'upload.tmp');
  const original = readFileSync('media/demo/colour-bars-at-dawn.webm');
  writeFileSync(file, original);
  await titles.keep('101-abc.webm', file);
  assert.deepEqual(objects.get('/rental/titles/101-abc.webm'), original);
  assert.throws(() => readFileSync(file), 'the local copy is gone once uploaded');

  const reader = await titles.open('101-abc.webm');
  const buf = Buffer.alloc(1000);
  assert.equal(await reader.read(buf, 5000), 1000);
  assert.deepEqual(buf, original.subarray(5000, 6000));
  assert.deepEqual(seen, [
    'PUT /rental/titles/101-abc.webm',
    'GET /rental/titles/101-abc.webm bytes=5000-5999',
  ]);

  // A wrong secret is refused by the store, and reading says so.
  const wrong = new S3Titles({
    url: new URL(`http://127.0.0.1:${port}/rental/titles`),
    ...EXAMPLE,
    secretAccessKey: 'not-the-secret',
  });
  await assert.rejects((await wrong.open('101-abc.webm')).read(buf, 0), /HTTP 403/);

  // The disk folder does the same by rename and positioned reads.
  const disk = new DiskTitles(dir);
  writeFileSync(file, original);
  await disk.keep('102.webm', file);
  const r2 = await disk.open('102.webm');
  assert.equal(await r2.read(buf, 5000), 1000);
  assert.deepEqual(buf, original.subarray(5000, 6000));
  await r2.close();
  await disk.close(); // its idle file stays open until then (else it is closed on collection, with a warning)
});

/** Descriptors this process holds open on files in `dir` (Linux). */
function openIn(dir: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`);
    } catch {
      return false;
    }
  }).length;
}

test('a title file on disk is shared by its readers, idle ones stay open up to a bound, and close lets go', async () => {
  const dir = tempDir();
  for (let i = 0; i < 40; i++) writeFileSync(join(dir, `t${i}.webm`), Buffer.from(`title number ${i}`));
  const titles = new DiskTitles(dir);
  const a = await titles.open('t0.webm');
  const b = await titles.open('t0.webm');
  assert.equal(openIn(dir), 1, 'two readers of one title share one descriptor');
  await a.close();
  const buf = Buffer.alloc(6);
  assert.equal(await b.read(buf, 6), 6, 'the other reader still reads after the first closed');
  assert.equal(buf.toString(), 'number');
  await b.close();
  for (let i = 0; i < 40; i++) await (await titles.open(`t${i}.webm`)).close();
  assert.equal(openIn(dir), 32, 'idle titles beyond 32 are closed, least recently used first');
  const again = await titles.open('t39.webm');
  assert.equal(openIn(dir), 32, 'a recent title is still open');
  await titles.close();
  assert.equal(openIn(dir), 1, 'shutdown closes the idle ones; a reader keeps its own');
  await again.close();
  assert.equal(openIn(dir), 0);
  await assert.rejects(titles.open('missing.webm'), /ENOENT/);
  assert.equal(openIn(dir), 0);
});
