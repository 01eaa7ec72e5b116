/**
 * The operator's command line (`npm run cli -- <command>`, installed as `rental`):
 * serve, ingest a title with a progress line, list the catalog.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { reportToCsv } from '../shared/analytics-report.ts';
import { cryptoReady } from '../shared/crypto.ts';
import { RentalError } from '../shared/errors.ts';
import { LIMITS } from '../shared/limits.ts';
import { Email, Password } from '../shared/protocol.ts';
import { intArg, parseCli, progressLine, requireArg, runCli, UsageError } from './cli-args.ts';
import { MediaStore } from './content/media-store.ts';
import { addAd } from './key/ads.ts';
import { buildReport, formatImpressions, formatReport } from './key/analytics.ts';
import { hashPassword } from './key/passwords.ts';
import { SERVE_USAGE, serve } from './main.ts';
import { openRepository } from './store/open-store.ts';
import type { Repository } from './store/repository.ts';

const USAGE = `usage: npm run cli -- <command> [options]
commands:
  serve [options]            run the server (same as npm start; see serve --help)
  ingest FILE --item N --title TITLE --genre GENRE --price-cents N
         [--year YYYY] [--synopsis TEXT] [--poster IMAGE] [--duration SECONDS]
         [--codecs vp9,opus] [--data DIR]
                             add or replace a title in the catalog
  catalog [--data DIR]       list the catalog
  catalog preroll ITEM on|off [--data DIR]
                             attach a pre-roll ad to deliveries of a title, or not (default on)
  admin create EMAIL [--name NAME] [--data DIR]
                             create an admin account; the password is read from standard input
  admin grant|revoke EMAIL [--data DIR]
                             let an existing account open the analytics view, or stop it
  ads add --text TEXT --creative FILE [--segment ITEM=V1,V2 ...] [--from DATE] [--to DATE] [--weight N]
  ads list | ads remove AD_ID   [--data DIR]
                             the ad inventory; segments over genre, ageBand, region, dayPart,
                             lengthBand, terminalType (e.g. --segment genre=drama --segment region=west)
  report [--days N] [--csv] [--data DIR]
                             rentals by the classification items (genre, day-part, region, age band,
                             length, terminal type) and per day, and ad impressions, over the last N days
                             (default 30); --csv prints the admin view's CSV export

${SERVE_USAGE}`;

function codecsArg(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[a-z0-9.]+(,[a-z0-9.]+)*$/i.test(value)) {
    throw new UsageError(`--codecs must look like vp9,opus (got ${JSON.stringify(value)})`);
  }
  return value;
}

const SEGMENT_ITEMS = ['genre', 'ageBand', 'region', 'dayPart', 'lengthBand', 'terminalType'];

function dateArg(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const t = Date.parse(String(value));
  if (!Number.isFinite(t)) {
    throw new UsageError(
      `--${name} must be a date like 2026-12-01 or 2026-12-01T20:00 (got ${JSON.stringify(value)})`,
    );
  }
  return t;
}

async function adsCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseCli(
    rest,
    {
      data: { type: 'string', default: './data' },
      text: { type: 'string' },
      creative: { type: 'string' },
      segment: { type: 'string', multiple: true },
      from: { type: 'string' },
      to: { type: 'string' },
      weight: { type: 'string' },
    },
    true,
  );
  if (sub !== 'add' && sub !== 'list' && sub !== 'remove')
    throw new UsageError('ads needs add, list or remove');
  const repo = await openRepo(values.data as string);
  try {
    if (sub === 'add') {
      const text = requireArg(values.text, 'text').trim();
      if (text.length > 140) throw new UsageError('--text is at most 140 characters');
      const creative = requireArg(values.creative, 'creative');
      const segments: Record<string, string[]> = {};
      for (const seg of (values.segment as string[] | undefined) ?? []) {
        const m = /^([a-zA-Z]+)=(.+)$/.exec(seg);
        if (!m || !SEGMENT_ITEMS.includes(m[1] as string)) {
          throw new UsageError(
            `--segment must look like ITEM=V1,V2 with ITEM one of ${SEGMENT_ITEMS.join(', ')} (got ${JSON.stringify(seg)})`,
          );
        }
        segments[m[1] as string] = (m[2] as string)
          .split(',')
          .map((v) => v.trim().toLowerCase())
          .filter(Boolean);
      }
      const startsAt = dateArg(values.from, 'from', Date.now());
      const endsAt = dateArg(values.to, 'to', startsAt + 30 * 86_400_000);
      const weight = intArg(values.weight, 'weight', 1, 100) ?? 1;
      try {
        const ad = await addAd(repo, values.data as string, {
          text,
          creative,
          segments,
          startsAt,
          endsAt,
          weight,
        });
        process.stdout.write(
          `ad ${ad.adId} added (${ad.mimeType}, weight ${ad.weight}, ${new Date(ad.startsAt).toISOString()} to ${new Date(ad.endsAt).toISOString()})\n`,
        );
        return 0;
      } catch (err) {
        if (err instanceof RentalError || (err as { code?: string }).code === 'ENOENT') {
          process.stderr.write(`ad refused: ${(err as Error).message}\n`);
          return 1;
        }
        throw err;
      }
    }
    if (sub === 'list') {
      const ads = await repo.ads();
      if (ads.length === 0) process.stdout.write('no ads\n');
      for (const a of ads) {
        const seg =
          Object.entries(a.segments)
            .map(([k, v]) => `${k}=${(v ?? []).join(',')}`)
            .join(' ') || 'everyone';
        const flight = `${new Date(a.startsAt).toISOString().slice(0, 10)}..${new Date(a.endsAt).toISOString().slice(0, 10)}`;
        process.stdout.write(`${a.adId}  w${a.weight}  ${flight}  ${seg}  "${a.text}"\n`);
      }
      return 0;
    }
    const id = positionals[0];
    if (!id || !/^[0-9a-f-]{36}$/.test(id)) throw new UsageError('ads remove needs an AD_ID (see ads list)');
    if (!(await repo.removeAd(id, Date.now()))) {
      process.stderr.write(`no active ad ${id}\n`);
      return 1;
    }
    process.stdout.write(`ad ${id} removed\n`);
    return 0;
  } finally {
    await repo.close();
  }
}

async function cataloguePreroll(positionals: string[], dataDir: string): Promise<number> {
  const [sub, item, state, ...extra] = positionals;
  if (sub !== 'preroll' || !item || (state !== 'on' && state !== 'off') || extra.length)
    throw new UsageError('catalog takes no arguments, or: catalog preroll ITEM on|off');
  const itemNumber = intArg(item, 'item', 1, 999_999_999) as number;
  const repo = await openRepo(dataDir);
  try {
    if (!(await repo.setCatalogPreroll(itemNumber, state === 'on'))) {
      process.stderr.write(`no item ${itemNumber} in the catalog\n`);
      return 1;
    }
    process.stdout.write(`item ${itemNumber}: pre-roll ${state} (for orders dispatched from now on)\n`);
    return 0;
  } finally {
    await repo.close();
  }
}

/** The first line of standard input (a password piped in, never on the command line or in history). */
async function readLine(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.includes('\n') || text.length > 1024) break;
  }
  return text.split(/\r?\n/)[0] ?? '';
}

async function adminCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(
    argv,
    { data: { type: 'string', default: './data' }, name: { type: 'string' } },
    true,
  );
  const [sub, emailArg, ...extra] = positionals;
  if ((sub !== 'create' && sub !== 'grant' && sub !== 'revoke') || !emailArg || extra.length)
    throw new UsageError('admin needs create, grant or revoke, and one EMAIL');
  const email = Email.safeParse(emailArg);
  if (!email.success) throw new UsageError(`${JSON.stringify(emailArg)} is not an e-mail address`);
  const repo = await openRepo(values.data as string);
  try {
    if (sub === 'create') {
      if (process.stdin.isTTY) process.stderr.write('password (at least 8 characters): ');
      const password = Password.safeParse(await readLine());
      if (!password.success)
        throw new UsageError(
          `the password on standard input must be ${LIMITS.minPasswordLength} to ${LIMITS.maxPasswordLength} characters`,
        );
      const name = String(values.name ?? 'Administrator').slice(0, LIMITS.maxNameLength);
      const created = await repo.createCustomer({
        id: randomUUID(),
        email: email.data,
        name,
        passwordHash: await hashPassword(password.data),
        createdAt: Date.now(),
        ageBand: null,
        region: null,
        role: 'admin',
      });
      if (!created) {
        process.stderr.write(`an account with ${email.data} exists already; use admin grant\n`);
        return 1;
      }
      process.stdout.write(`admin ${email.data} created\n`);
      return 0;
    }
    if (!(await repo.setCustomerRole(email.data, sub === 'grant' ? 'admin' : 'customer'))) {
      process.stderr.write(`no account with ${email.data}\n`);
      return 1;
    }
    process.stdout.write(`${email.data} ${sub === 'grant' ? 'is now an admin' : 'is no longer an admin'}\n`);
    return 0;
  } finally {
    await repo.close();
  }
}

/** The store the server uses: PostgreSQL at $DATABASE_URL if set, else SQLite in the data folder. */
function openRepo(dataDir: string): Promise<Repository> {
  mkdirSync(dataDir, { recursive: true });
  return openRepository(resolve(dataDir), process.env.DATABASE_URL || undefined);
}

async function main(argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
  if (command === 'serve') return serve(rest);
  if (command === 'ingest') {
    const { values, positionals } = parseCli(
      rest,
      {
        item: { type: 'string' },
        title: { type: 'string' },
        genre: { type: 'string' },
        'price-cents': { type: 'string' },
        year: { type: 'string' },
        synopsis: { type: 'string' },
        poster: { type: 'string' },
        duration: { type: 'string' },
        codecs: { type: 'string' },
        data: { type: 'string', default: './data' },
      },
      true,
    );
    const file = positionals[0];
    if (!file || positionals.length > 1) throw new UsageError('ingest needs exactly one FILE');
    const title = requireArg(values.title, 'title').trim();
    const genre = requireArg(values.genre, 'genre').trim();
    if (title.length > 200 || genre.length > 64)
      throw new UsageError('--title (200) or --genre (64) is too long');
    const meta = {
      itemNumber: intArg(requireArg(values.item, 'item'), 'item', 1, 999_999_999) as number,
      title,
      genre,
      priceCents: intArg(
        requireArg(values['price-cents'], 'price-cents'),
        'price-cents',
        0,
        100_000,
      ) as number,
      year: intArg(values.year, 'year', 1888, 2100) ?? null,
      synopsis: typeof values.synopsis === 'string' ? values.synopsis.slice(0, 2000) : '',
      poster: values.poster as string | undefined,
      durationSeconds: intArg(values.duration, 'duration', 0, 1_000_000),
      codecs: codecsArg(values.codecs),
    };
    await cryptoReady();
    const repo = await openRepo(values.data as string);
    try {
      const store = new MediaStore(values.data as string, repo);
      process.stderr.write(`checking ${file}: decoding it once to catch corrupt or truncated media\n`);
      const row = await store.ingest(file, meta, progressLine(`ingesting ${file}`));
      process.stdout.write(
        `item ${row.itemNumber} "${row.title}" ingested: ${row.size} bytes, sha256 ${row.sha256}\n`,
      );
      if (!store.lastVerified) {
        process.stdout.write(
          'note: not decoded end to end (ffmpeg is not installed); install ffmpeg to catch corrupt files\n',
        );
      }
      return 0;
    } catch (err) {
      if (err instanceof RentalError) {
        process.stderr.write(`ingest refused: ${err.message}\n`);
        return 1;
      }
      throw err;
    } finally {
      await repo.close();
    }
  }
  if (command === 'ads') return adsCommand(rest);
  if (command === 'report') {
    const { values } = parseCli(rest, {
      data: { type: 'string', default: './data' },
      days: { type: 'string' },
      csv: { type: 'boolean', default: false },
    });
    const days = intArg(values.days, 'days', 1, 3650) ?? 30;
    const repo = await openRepo(values.data as string);
    try {
      const r = await buildReport(repo, days);
      process.stdout.write(
        values.csv
          ? reportToCsv(r)
          : `Last ${days} days\n\n${formatReport(r.rentals)}\n${formatImpressions(r.impressions)}`,
      );
      return 0;
    } finally {
      await repo.close();
    }
  }
  if (command === 'admin') return adminCommand(rest);
  if (command === 'catalog') {
    const { values, positionals } = parseCli(rest, { data: { type: 'string', default: './data' } }, true);
    if (positionals.length > 0) return cataloguePreroll(positionals, values.data as string);
    const repo = await openRepo(values.data as string);
    try {
      const items = await repo.catalog();
      if (items.length === 0)
        process.stdout.write('the catalog is empty (npm start loads the demo catalog)\n');
      for (const i of items) {
        process.stdout.write(
          `${String(i.itemNumber).padStart(6)}  ${i.title.padEnd(30)} ${i.genre.padEnd(16)} ${(i.priceCents / 100).toFixed(2).padStart(7)}  ${(i.size / 1048576).toFixed(1)} MB${i.preroll === false ? '  no pre-roll' : ''}\n`,
        );
      }
      return 0;
    } finally {
      await repo.close();
    }
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)}`);
}

runCli(() => main(process.argv.slice(2)), USAGE);
