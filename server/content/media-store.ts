/**
 * The content store's media on disk and the catalog rows that describe it. Ingest streams the file
 * (never whole in memory), checks it is a real media container, and only then makes it visible:
 * it is copied to a temporary name, synced, and renamed, so a failure leaves nothing half-ingested.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { copyFile, open, rm, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import type { CatalogItem } from '../../shared/protocol.ts';
import type { CatalogRow, Repository } from '../store/repository.ts';
import { type TitleObjects, titleObjects } from './title-objects.ts';

export interface IngestMeta {
  itemNumber: number;
  title: string;
  genre: string;
  year?: number | null;
  synopsis?: string;
  priceCents: number;
  durationSeconds?: number;
  poster?: string;
  /** RFC 6381 codecs, e.g. "vp9,opus": players need them to feed Media Source Extensions. */
  codecs?: string;
}

export type Progress = (done: number, total: number) => void;

const MIME_BY_EXT: Record<string, string> = {
  '.webm': 'video/webm',
  '.mp4': 'video/mp4',
  '.mkv': 'video/x-matroska',
};

/** Refuse anything that is not a WebM/Matroska or MP4 container (by its magic bytes, not its name). */
async function sniffContainer(file: string): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(12);
    const { bytesRead } = await fh.read(head, 0, 12, 0);
    if (bytesRead >= 4 && head.readUInt32BE(0) === 0x1a45dfa3) {
      return extname(file).toLowerCase() === '.mkv' ? 'video/x-matroska' : 'video/webm';
    }
    if (bytesRead >= 12 && head.toString('latin1', 4, 8) === 'ftyp') return 'video/mp4';
  } finally {
    await fh.close();
  }
  throw new RentalError('BAD_MESSAGE', `${basename(file)} is not a WebM, Matroska or MP4 file`);
}

/**
 * Ask ffprobe (when installed) for duration and codecs; it also catches truncated or corrupt files.
 * Without ffprobe the deep check is skipped and the caller's values are used.
 */
function probe(file: string): { duration: number; codecs: string } | undefined {
  const r = spawnSync(
    'ffprobe',
    ['-v', 'error', '-show_entries', 'format=duration:stream=codec_name', '-of', 'json', file],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (r.error) return undefined;
  let parsed: { format?: { duration?: string }; streams?: { codec_name?: string }[] } = {};
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    // reported below as corrupt
  }
  const d = Number.parseFloat(parsed.format?.duration ?? '');
  if (r.status !== 0 || !Number.isFinite(d) || r.stderr.trim()) {
    throw new RentalError(
      'BAD_MESSAGE',
      `${basename(file)} is corrupt or truncated: ${r.stderr.trim().split('\n')[0] || 'no duration'}`,
    );
  }
  const codecs = (parsed.streams ?? [])
    .map((st) => st.codec_name)
    .filter(Boolean)
    .join(',');
  return { duration: d, codecs };
}

/**
 * Decode the whole file once (ffmpeg, when installed): the only reliable way to catch a title that
 * is truncated or corrupt in the middle, which container headers do not reveal. Returns false when
 * ffmpeg is not installed (the check is then skipped and the caller says so).
 */
function verifyDecodes(file: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const p = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-f', 'null', '-'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let errors = '';
    p.stderr.on('data', (d) => {
      if (errors.length < 4000) errors += d;
    });
    p.on('error', () => resolve(false));
    p.on('close', (code) => {
      if (code === 0 && errors.trim() === '') return resolve(true);
      const first = errors.trim().split('\n')[0] ?? `ffmpeg exited with ${code}`;
      reject(
        new RentalError(
          'BAD_MESSAGE',
          `${basename(file)} is corrupt or truncated: ${first.replace(/^\[[^\]]*\]\s*/, '')}`,
        ),
      );
    });
  });
}

export class MediaStore {
  readonly dir: string;
  /** Title files: in `dir`, or in an object store (title-objects.ts). */
  readonly titles: TitleObjects;

  constructor(
    dataDir: string,
    private readonly repo: Repository,
  ) {
    this.dir = join(dataDir, 'media');
    mkdirSync(this.dir, { recursive: true });
    this.titles = titleObjects(this.dir);
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  /** Set after each ingest: whether the title was decoded end to end (false when ffmpeg is missing). */
  lastVerified = false;

  async ingest(src: string, meta: IngestMeta, onProgress?: Progress, verify = true): Promise<CatalogRow> {
    const info = await stat(src).catch(() => undefined);
    if (!info?.isFile()) throw new RentalError('NOT_FOUND', `${src} is not a file`);
    if (info.size === 0) throw new RentalError('BAD_MESSAGE', `${basename(src)} is empty`);
    if (info.size > LIMITS.maxTitleBytes)
      throw new RentalError('TOO_LARGE', `${basename(src)} is larger than the limit`);
    const container = await sniffContainer(src);
    // Trusted files (the shipped demo catalog, benchmarks) skip the probe as well as the decode.
    const probed = verify ? probe(src) : undefined;
    const durationSeconds = meta.durationSeconds ?? probed?.duration ?? 0;
    const codecs = meta.codecs ?? probed?.codecs;
    const mimeType = codecs ? `${container}; codecs="${codecs}"` : container;
    this.lastVerified = verify ? await verifyDecodes(src) : false;

    const tmp = this.path(`.ingest-${randomUUID()}`);
    const hash = createHash('sha256');
    let done = 0;
    const out = await open(tmp, 'wx', 0o600);
    try {
      for await (const chunk of createReadStream(src, { highWaterMark: 1024 * 1024 })) {
        const b = chunk as Buffer;
        hash.update(b);
        await out.write(b);
        done += b.length;
        onProgress?.(done, info.size);
      }
      await out.sync();
    } catch (err) {
      await out.close().catch(() => undefined);
      await rm(tmp, { force: true });
      if ((err as { code?: string }).code === 'ENOSPC') {
        throw new RentalError(
          'STORAGE_FULL',
          `no space left in ${this.dir} for ${basename(src)}; nothing was ingested`,
        );
      }
      throw err;
    }
    await out.close();
    if (done !== info.size) {
      await rm(tmp, { force: true });
      throw new RentalError('BAD_MESSAGE', `${basename(src)} changed while it was being ingested`);
    }
    const sha256 = hash.digest('hex');
    const ext = Object.entries(MIME_BY_EXT).find(([, m]) => m === container)?.[0] ?? '.bin';
    const mediaFile = `${meta.itemNumber}-${sha256.slice(0, 12)}${ext}`;
    let posterFile: string | null = null;
    try {
      if (meta.poster) {
        const pext = extname(meta.poster).toLowerCase();
        if (!['.jpg', '.jpeg', '.png', '.webp'].includes(pext)) {
          throw new RentalError('BAD_MESSAGE', 'poster must be a .jpg, .png or .webp image');
        }
        posterFile = `${meta.itemNumber}-poster${pext}`;
        await copyFile(meta.poster, this.path(posterFile));
      }
      await this.titles.keep(mediaFile, tmp);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const row: CatalogRow = {
      itemNumber: meta.itemNumber,
      title: meta.title,
      genre: meta.genre,
      year: meta.year ?? null,
      synopsis: meta.synopsis ?? '',
      durationSeconds,
      priceCents: meta.priceCents,
      posterFile,
      mediaFile,
      mimeType,
      size: info.size,
      sha256,
      createdAt: Date.now(),
    };
    await this.repo.upsertCatalogItem(row);
    return row;
  }

  /** Load the demo catalog shipped in media/demo on a first start (an empty catalog). */
  async seedDemoCatalog(): Promise<number> {
    if ((await this.repo.catalog()).length > 0) return 0;
    const demoDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../media/demo');
    const list = JSON.parse(readFileSync(join(demoDir, 'catalog.json'), 'utf8')) as (IngestMeta & {
      file: string;
    })[];
    for (const entry of list) {
      const poster = entry.poster ? join(demoDir, entry.poster) : undefined;
      // Shipped with the code and checked when made: no need to decode them again on every first start.
      await this.ingest(
        join(demoDir, entry.file),
        { ...entry, poster: poster && existsSync(poster) ? poster : undefined },
        undefined,
        false,
      );
    }
    return list.length;
  }
}

export const catalogView = (r: CatalogRow): CatalogItem => ({
  itemNumber: r.itemNumber,
  title: r.title,
  genre: r.genre,
  year: r.year,
  synopsis: r.synopsis,
  durationSeconds: r.durationSeconds,
  priceCents: r.priceCents,
  posterUrl: r.posterFile ? `/posters/${r.itemNumber}` : null,
  size: r.size,
  mimeType: r.mimeType,
});
