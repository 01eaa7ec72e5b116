/** The command lines: bad arguments are clear and non-zero; ingest works and refuses non-media; the demo runs. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { cleanup, tempDir } from './harness.ts';

afterEach(cleanup);

const run = (script: string, args: string[], timeout = 60_000) =>
  spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { encoding: 'utf8', timeout });

/** `cli ingest FILE` with the catalog fields every ingest needs. */
const ingest = (data: string, file: string, item: string, title: string, genre: string, price: string) =>
  run('server/cli.ts', [
    'ingest',
    file,
    '--item',
    item,
    '--title',
    title,
    '--genre',
    genre,
    '--price-cents',
    price,
    '--data',
    data,
  ]);

test('every command rejects missing or invalid arguments with a message and a non-zero exit', () => {
  const cases: [string, string[], RegExp][] = [
    ['server/cli.ts', [], /usage/],
    ['server/cli.ts', ['frobnicate'], /unknown command/],
    ['server/cli.ts', ['ingest'], /exactly one FILE/],
    ['server/cli.ts', ['ingest', 'a.webm'], /--title is required/],
    [
      'server/cli.ts',
      ['ingest', 'a.webm', '--title', 'T', '--genre', 'G', '--item', 'x', '--price-cents', '1'],
      /--item must be a whole number/,
    ],
    [
      'server/cli.ts',
      ['ingest', 'a.webm', '--title', 'T', '--genre', 'G', '--item', '1', '--price-cents=-5'],
      /--price-cents must be/,
    ],
    ['server/cli.ts', ['catalog', '--bogus'], /Unknown option '--bogus'/],
    ['server/cli.ts', ['serve', '--port', '70000'], /--port must be a whole number from 0 to 65535/],
    ['server/cli.ts', ['serve', '--role', 'both'], /--role must be all, key or content/],
    ['server/cli.ts', ['serve', '--role', 'content'], /--role content needs --key-server/],
    ['server/cli.ts', ['serve', '--role', 'content', '--key-server', 'http://x'], /ws:\/\/ or wss:\/\//],
    ['server/cli.ts', ['serve', '--database-url', 'mysql://x'], /must look like postgres:\/\//],
    [
      'server/cli.ts',
      [
        'serve',
        '--no-open',
        '--port',
        '0',
        '--data',
        join(tmpdir(), 'rd-cli-pg'),
        '--database-url',
        'postgres://u:hunter22@127.0.0.1:1/db',
      ],
      /cannot open the PostgreSQL database 127\.0\.0\.1:1\/db: connect ECONNREFUSED/,
    ],
    ['server/cli.ts', ['admin'], /admin needs create, grant or revoke/],
    ['server/cli.ts', ['admin', 'grant', 'not-an-email'], /is not an e-mail address/],
    ['server/cli.ts', ['catalog', 'preroll', '101', 'maybe'], /catalog preroll ITEM on\|off/],
    ['server/cli.ts', ['ads'], /ads needs add, list or remove/],
    ['server/cli.ts', ['ads', 'add'], /--text is required/],
    [
      'server/cli.ts',
      ['ads', 'add', '--text', 'x', '--creative', 'a.jpg', '--segment', 'colour=red'],
      /--segment must look like ITEM=V1,V2/,
    ],
    [
      'server/cli.ts',
      ['ads', 'add', '--text', 'x', '--creative', 'a.jpg', '--from', 'someday'],
      /--from must be a date/,
    ],
    ['server/cli.ts', ['ads', 'remove'], /ads remove needs an AD_ID/],
    ['server/cli.ts', ['report', '--days', '0'], /--days must be a whole number from 1/],
    ['player/headless/cli.ts', [], /usage/],
    ['player/headless/cli.ts', ['run'], /--server is required/],
    ['player/headless/cli.ts', ['run', '--server', 'localhost:8080'], /must be a ws:\/\/ or wss:\/\/ URL/],
    ['player/headless/cli.ts', ['play', '--out', 'x'], /exactly one ORDER_ID/],
    ['player/headless/cli.ts', ['play', 'not-an-order', '--out', 'x'], /is not an order id/],
    ['player/headless/cli.ts', ['dance'], /unknown command/],
    ['scripts/demo.ts', ['--period', '1'], /--period must be a whole number from 5 to 300/],
    ['bench/run.ts', ['--bogus'], /Unknown option '--bogus'/],
    ['bench/run.ts', ['--only', 'ordrs'], /--only takes measures from delivery, first-frame/],
    ['bench/run.ts', ['--only', ''], /--only takes measures/],
    ['bench/terminal-farm.ts', ['--dir', 'd'], /--server is required/],
    [
      'bench/terminal-farm.ts',
      ['--server', 'ws://127.0.0.1:1/ws', '--dir', 'd', '--count', 'x'],
      /--count must be/,
    ],
    ['bench/compare.ts', [], /--base is required/],
    ['bench/compare.ts', ['--base', 'no-such-revision'], /is not a commit of this repository/],
    [
      'bench/compare.ts',
      ['--base', 'HEAD', '--rounds', '21'],
      /--rounds must be a whole number from 1 to 20/,
    ],
    ['bench/compare.ts', ['--base', 'HEAD', '--only', 'orders,nope'], /--only takes measures/],
    ['bench/process-probes.ts', [], /name at least one probe file/],
    ['bench/process-probes.ts', ['a.txt', 'b.txt'], /one probe file at a time/],
    ['bench/process-probes.ts', ['/no/such/probes.txt'], /no such file/],
    ['bench/process-probes.ts', ['--orders', '/no/such/orders.json', 'p.txt'], /--orders: cannot read/],
  ];
  for (const [script, args, want] of cases) {
    const r = run(script, args);
    assert.notEqual(r.status, 0, `${script} ${args.join(' ')} should fail`);
    assert.match(r.stderr + r.stdout, want, `${script} ${args.join(' ')}`);
    assert.doesNotMatch(r.stderr + r.stdout, /hunter22/, 'a password in a URL is never printed');
  }
});

test('the installed commands run their command lines (imported from bin/, not named on the command line)', () => {
  const dir = tempDir('rd-bin-');
  for (const [bin, args, status, want] of [
    ['bin/rental-terminal.js', ['dance'], 2, /unknown command/],
    ['bin/rental-terminal.js', ['list', '--data', dir], 0, /no rentals on this terminal/],
    ['bin/rental.js', ['frobnicate'], 2, /unknown command/],
  ] as const) {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, status, `${bin} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr + r.stdout, want, `${bin} ${args.join(' ')}`);
  }
});

test('ingest stores a real clip with a progress line and refuses a fake one, leaving nothing behind', () => {
  const data = tempDir();
  const ok = ingest(data, 'media/demo/colour-bars-at-dawn.webm', '501', 'Bars Again', 'Documentary', '199');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /ingesting .*100%/);
  assert.match(ok.stdout, /item 501 "Bars Again" ingested/);
  const list = run('server/cli.ts', ['catalog', '--data', data]);
  assert.match(list.stdout, /501\s+Bars Again/);

  const fake = join(data, 'fake.webm');
  writeFileSync(fake, 'this is not a video at all');
  const bad = ingest(data, fake, '502', 'Fake', 'X', '1');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /not a WebM, Matroska or MP4 file/);
  assert.doesNotMatch(run('server/cli.ts', ['catalog', '--data', data]).stdout, /Fake/);
  assert.deepEqual(
    readdirSync(join(data, 'media')).filter((f) => f.startsWith('.ingest')),
    [],
    'no half-ingested temporary file',
  );
  const missing = ingest(data, join(data, 'nope.webm'), '503', 'N', 'X', '1');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /is not a file/);
  assert.ok(existsSync(join(data, 'rental.sqlite')));
});

test('npm run demo walks a whole rental and exits 0', () => {
  const r = run('scripts/demo.ts', ['--period', '5'], 120_000);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /decrypted sha256 ([0-9a-f]{64})/);
  const [, a] = /original\s+sha256 ([0-9a-f]{64})/.exec(r.stdout) ?? [];
  const [, b] = /decrypted sha256 ([0-9a-f]{64})/.exec(r.stdout) ?? [];
  assert.equal(a, b);
  assert.match(r.stdout, /cannot play: .*\(EXPIRED\) \(exit 3\)/);
  assert.match(r.stdout, /the store shows: expired/);
});

test('ingest refuses a truncated or corrupt clip with the reason, and keeps nothing of it', () => {
  const data = tempDir();
  const original = readFileSync('media/demo/life-in-cells.webm');
  const truncated = join(data, 'truncated.webm');
  writeFileSync(truncated, original.subarray(0, Math.floor(original.length / 2)));
  const corrupt = join(data, 'corrupt.webm');
  const bytes = Buffer.from(original);
  for (let i = 0; i < 200; i++) {
    const at = 2000 + ((i * 7919) % (bytes.length - 2000));
    bytes[at] = (bytes[at] as number) ^ 0x5a;
  }
  writeFileSync(corrupt, bytes);
  for (const [file, item] of [
    [truncated, '601'],
    [corrupt, '602'],
  ] as const) {
    const r = ingest(data, file, item, 'Bad', 'X', '1');
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, /ingest refused: .* is corrupt or truncated: \S+/);
  }
  assert.doesNotMatch(run('server/cli.ts', ['catalog', '--data', data]).stdout, /Bad/);
  assert.deepEqual(readdirSync(join(data, 'media')), [], 'no media file or temporary left');
});

test('bench/process-probes.ts: the slowest orders against the major collections, and orders files checked', async () => {
  const { tailAgainstCollections, MARKING_LEAD_MS } = await import('../bench/process-probes.ts');
  // 200 orders a millisecond apart, 5 ms each, but for two slow ones: one meets a collection's
  // pause, the other only the marking before the next (it ends 40 ms before that pause).
  const orders: [number, number][] = Array.from({ length: 200 }, (_, i) => [1000 + i, 5]);
  orders[10] = [1010, 30];
  orders[150] = [1100, 50];
  const pauses: [number, number][] = [
    [1030, 4],
    [1190, 6],
  ];
  const t = tailAgainstCollections(orders, pauses);
  assert.equal(t.slowest, 2);
  assert.equal(t.slowestDuringCollection, 2);
  assert.equal(t.p99, 30, 'the 99th percentile of 200: the second slowest');
  assert.equal(t.p99Clear, 5, 'the orders that met no collection');
  // Fast orders count too: placed 1000-1034 (under way at the first pause, whose marking lead
  // starts before them) and 1105-1196 (ending inside the second's 80 ms lead or its pause), 35 + 92.
  // Without the lead only 23 would.
  assert.equal(MARKING_LEAD_MS, 80);
  assert.equal(t.duringCollection, 127);
  assert.equal(tailAgainstCollections(orders, []).slowestDuringCollection, 0);

  const dir = tempDir('rd-probes-');
  const bad = join(dir, 'orders.json');
  writeFileSync(
    bad,
    JSON.stringify([
      [1, 2],
      [3, 'x'],
    ]),
  );
  const probe = join(dir, 'probe.txt');
  writeFileSync(probe, '1030 gc major 4.00\n1100 gc minor 1.00\n');
  const refused = run('bench/process-probes.ts', ['--orders', bad, probe]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /is not a list of \[placed at, ms\] pairs/);
  const good = join(dir, 'orders-good.json');
  writeFileSync(good, JSON.stringify(orders));
  const report = run('bench/process-probes.ts', ['--orders', good, probe]);
  assert.equal(report.status, 0, report.stderr);
  assert.match(report.stdout, /1 major collections during the run \(pauses 4\.0 ms\)/);
  assert.match(report.stdout, /200 orders, p99 30 ms; of the 2 slowest, 1 were under way/);
});

test('bench/compare.ts: the figures every run has, each run beside the means, and head over base', async () => {
  const { compareTable } = await import('../bench/compare.ts');
  const rows = compareTable(
    [
      { p99: 40, max: 2000, only_base: 1 },
      { p99: 60, max: 2200, only_base: 2 },
    ],
    [
      { p99: 30, max: 2300, broken: Number.NaN },
      { p99: 20, max: 2500, broken: 1 },
    ],
  );
  assert.deepEqual(rows, [
    ['max', '2100 (2000, 2200)', '2400 (2300, 2500)', '1.14'],
    ['p99', '50.0 (40.0, 60.0)', '25.0 (30.0, 20.0)', '0.50'],
  ]);
});
