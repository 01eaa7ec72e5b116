/**
 * Where title files live: a folder on disk (the default) or a bucket on an S3-compatible object store
 * (AWS S3, MinIO, Ceph, R2…), chosen by RENTAL_MEDIA_S3_URL. Delivery only ever reads byte ranges,
 * so a title never has to be on the content server's disk. Posters and ad creatives are small and
 * stay in the data folder.
 */
import { createHash, createHmac } from 'node:crypto';
import { createReadStream, read, readSync } from 'node:fs';
import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { ChurnMap } from '../../shared/churn-map.ts';

export interface TitleReader {
  /** Fill `into` from byte `position`; returns how many bytes were read. */
  read(into: Buffer, position: number): Promise<number>;
  /** The open file's descriptor, for a title on local disk: sealing threads read it directly. */
  readonly fd?: number;
  close(): Promise<void>;
}

export interface TitleObjects {
  /** For messages: where titles are kept. */
  readonly where: string;
  /** Keep the finished local file `from` as `name` (moved on disk, uploaded to a bucket). */
  keep(name: string, from: string): Promise<void>;
  open(name: string): Promise<TitleReader>;
  /** Let go of whatever is held open (at server shutdown). */
  close(): Promise<void>;
}

/** Reads up to this size are done on the event loop (see DiskTitles.open's read). */
const SMALL_READ_BYTES = 64 * 1024;
/** Idle title files kept open: a busy server delivers the same titles over and over. */
const IDLE_TITLES = 32;

export class DiskTitles implements TitleObjects {
  constructor(readonly where: string) {}
  async keep(name: string, from: string) {
    await rename(from, join(this.where, name));
  }

  /**
   * One open file per title, shared by every delivery reading it (reads are positional). A title's
   * name carries its content hash, so the bytes behind a name never change and a file may stay
   * open between deliveries; the least recently used idle ones are closed beyond IDLE_TITLES.
   * A ChurnMap in order of last use: moving a title to the end of a long-lived Map for every order
   * kept the Map's outgrown tables alive (see ChurnMap).
   */
  private readonly files = new ChurnMap<string, OpenTitle>();
  async open(name: string): Promise<TitleReader> {
    let file = this.files.get(name);
    if (file)
      this.files.delete(name); // re-inserted below: the map is in order of last use
    else file = { fh: open(join(this.where, name), 'r'), readers: 0 };
    this.files.set(name, file);
    file.readers++;
    try {
      return new DiskTitleReader(this, file, await file.fh);
    } catch (err) {
      file.readers--;
      if (this.files.get(name) === file) this.files.delete(name);
      throw err;
    }
  }
  private idleKept = IDLE_TITLES;
  /** @internal A reader let go of its title. */
  async released(file: OpenTitle): Promise<void> {
    file.readers--;
    await this.closeIdle(this.idleKept);
  }
  private async closeIdle(keep: number) {
    const idle = this.files.entries().filter(([, f]) => f.readers === 0);
    for (const [name, f] of idle.slice(0, Math.max(0, idle.length - keep))) {
      this.files.delete(name);
      await (await f.fh).close();
    }
  }
  async close() {
    this.idleKept = 0; // deliveries still reading close their files as they finish
    await this.closeIdle(0);
  }
}

interface OpenTitle {
  fh: Promise<FileHandle>;
  readers: number;
}

/**
 * One delivery's reader of a shared open title. A class, not an object of closures: under tsx each
 * named closure made per order cost a defineProperty (BENCHMARKS.md).
 */
class DiskTitleReader implements TitleReader {
  private closed = false;
  /** Reads on the thread pool in flight: close waits for them. */
  private reading: Set<Promise<number>> | undefined;
  readonly fd: number;

  constructor(
    private readonly titles: DiskTitles,
    private readonly file: OpenTitle,
    fh: FileHandle,
  ) {
    this.fd = fh.fd;
  }

  // Reads go through the callback API on the handle's descriptor (half the CPU of FileHandle.read,
  // and a delivery of small titles reads once per order).
  read(into: Buffer, position: number): Promise<number> {
    // A read of a chunk or less (a small title, a film's short last block) is done here: a copy
    // from the page cache for a title in use, where the thread pool costs a hand-off each way
    // (orders of a small title at 1,000/s: p50 7-24 ms against 14-53 in five alternating pairs,
    // CPU within noise). A cold read of one chunk holds the event loop for one disk read; bigger
    // reads go to the pool.
    if (into.length <= SMALL_READ_BYTES) {
      try {
        return Promise.resolve(readSync(this.fd, into, 0, into.length, position));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const p = new Promise<number>((resolve, reject) =>
      read(this.fd, into, 0, into.length, position, (err, n) => (err ? reject(err) : resolve(n))),
    );
    this.reading ??= new Set();
    const reading = this.reading;
    reading.add(p);
    const done = () => reading.delete(p);
    p.then(done, done);
    return p;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reading) await Promise.allSettled(this.reading);
    await this.titles.released(this.file);
  }
}

export interface S3Config {
  /** Path-style bucket URL, optionally with a key prefix: https://s3.example.com/bucket/titles */
  url: URL;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();

/**
 * AWS Signature Version 4 for one request (header-based). `headers` are the headers to sign besides
 * host and x-amz-date; returns every header to send, Authorization included.
 */
export function signV4(
  req: { method: string; url: URL; headers?: Record<string, string>; payloadHash: string },
  cfg: Omit<S3Config, 'url'>,
  now: Date,
): Record<string, string> {
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    ...Object.fromEntries(Object.entries(req.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v.trim()])),
    host: req.url.host,
    'x-amz-content-sha256': req.payloadHash,
    'x-amz-date': amzDate,
  };
  const names = Object.keys(headers).sort();
  const query = [...req.url.searchParams.entries()]
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .sort()
    .join('&');
  const canonical = [
    req.method,
    req.url.pathname,
    query,
    ...names.map((n) => `${n}:${headers[n]}`),
    '',
    names.join(';'),
    req.payloadHash,
  ].join('\n');
  const scope = `${day}/${cfg.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${cfg.secretAccessKey}`, day), cfg.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${cfg.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
}

export class S3Titles implements TitleObjects {
  readonly where: string;
  constructor(private readonly cfg: S3Config) {
    this.where = `${cfg.url.origin}${cfg.url.pathname}`;
  }
  async close() {} // every read is its own request

  private objectUrl(name: string): URL {
    const u = new URL(this.cfg.url);
    u.pathname = `${u.pathname.replace(/\/$/, '')}/${encodeURIComponent(name)}`;
    return u;
  }

  /** Uploaded in one PUT, streamed from disk (S3 takes up to 5 GB that way), then the local copy goes. */
  async keep(name: string, from: string) {
    const url = this.objectUrl(name);
    const size = (await stat(from)).size;
    const headers = signV4(
      { method: 'PUT', url, headers: { 'content-length': String(size) }, payloadHash: 'UNSIGNED-PAYLOAD' },
      this.cfg,
      new Date(),
    );
    await new Promise<void>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method: 'PUT', headers }, (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200
            ? resolve()
            : reject(new Error(`upload of ${name} failed: HTTP ${res.statusCode}`)),
        );
      });
      req.on('error', reject);
      createReadStream(from).on('error', reject).pipe(req);
    });
    await rm(from, { force: true });
  }

  async open(name: string): Promise<TitleReader> {
    const url = this.objectUrl(name);
    return {
      read: async (into, position) => {
        const range = `bytes=${position}-${position + into.length - 1}`;
        const headers = signV4(
          { method: 'GET', url, headers: { range }, payloadHash: sha256Hex('') },
          this.cfg,
          new Date(),
        );
        const res = await fetch(url, { headers });
        if (res.status !== 206 && res.status !== 200)
          throw new Error(`reading ${name} from the object store failed: HTTP ${res.status}`);
        const body = Buffer.from(await res.arrayBuffer());
        return body.copy(into, 0, 0, Math.min(body.length, into.length));
      },
      close: async () => {},
    };
  }
}

/** The disk folder, unless RENTAL_MEDIA_S3_URL (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) names a bucket. */
export function titleObjects(mediaDir: string, env: NodeJS.ProcessEnv = process.env): TitleObjects {
  const s3 = env.RENTAL_MEDIA_S3_URL;
  if (!s3) return new DiskTitles(mediaDir);
  const { AWS_ACCESS_KEY_ID: id, AWS_SECRET_ACCESS_KEY: secret } = env;
  if (!id || !secret)
    throw new Error('RENTAL_MEDIA_S3_URL needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  return new S3Titles({
    url: new URL(s3),
    region: env.AWS_REGION ?? 'us-east-1',
    accessKeyId: id,
    secretAccessKey: secret,
  });
}
