/**
 * Claims 19/25: the key server pushes ads to terminals, chosen by the customer's classified
 * segments, on connect and with a licence; never an expired or removed one, never another segment's.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { addAd } from '../server/key/ads.ts';
import { cleanup, linkedPair, rentNow, sleep, storeEnv, terminal, testServer } from './harness.ts';

afterEach(cleanup);

test('ads follow the segments: pushed with the licence and on reconnect, never expired, removed or mistargeted', async () => {
  const server = await testServer();
  const dataDir = server.dataDir;
  const creative = 'media/demo/life-in-cells.jpg';
  const now = Date.now();
  const drama = await addAd(server.repo, dataDir, {
    text: 'Drama night',
    creative,
    segments: { genre: ['drama'] },
    startsAt: now - 1000,
    endsAt: now + 3_600_000,
    weight: 1,
  });
  const expired = await addAd(server.repo, dataDir, {
    text: 'Old',
    creative,
    segments: {},
    startsAt: now - 7200_000,
    endsAt: now - 3600_000,
    weight: 100,
  });
  const elsewhere = await addAd(server.repo, dataDir, {
    text: 'Elsewhere',
    creative,
    segments: { genre: ['documentary'] },
    startsAt: now - 1000,
    endsAt: now + 3_600_000,
    weight: 100,
  });
  const { c, t } = await linkedPair(server);
  // Before any order the customer has no genre: only ads without a genre target could match.
  await sleep(200);
  assert.equal(t.log.find('ad'), undefined);
  const order = await rentNow(c, t.core.terminalId, 103);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  const pushed = await t.log.waitFor('ad');
  assert.equal(pushed.adId, drama.adId);
  assert.equal(pushed.text, 'Drama night');
  // The creative is served by the server.
  const res = await fetch(new URL(pushed.creativeUrl, server.url));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/jpeg');
  // On reconnect the terminal gets an ad again; expired and other-genre ads never come.
  t.core.stop();
  const again = await terminal(server, { dir: t.dir });
  const second = await again.log.waitFor('ad');
  assert.equal(second.adId, drama.adId);
  for (const e of [...t.log.events, ...again.log.events]) {
    if (e.type === 'ad') assert.ok(e.adId !== expired.adId && e.adId !== elsewhere.adId);
  }
  // Once removed, it is not pushed any more.
  assert.equal(await server.repo.removeAd(drama.adId, Date.now()), true);
  again.core.stop();
  const third = await terminal(server, { dir: t.dir });
  await sleep(300);
  assert.equal(third.log.find('ad'), undefined);
});

test('impressions survive an offline terminal and are counted once', async () => {
  const server = await testServer();
  const dataDir = server.dataDir;
  const ad = await addAd(server.repo, dataDir, {
    text: 'Everyone',
    creative: 'media/demo/life-in-cells.jpg',
    segments: {},
    startsAt: Date.now() - 1000,
    endsAt: Date.now() + 3_600_000,
    weight: 1,
  });
  const { t } = await linkedPair(server);
  // Shown while offline: kept on the terminal.
  t.core.stop();
  await t.core.recordImpression(ad.adId, true);
  await t.core.recordImpression(ad.adId, false);
  assert.deepEqual(await server.repo.impressionCounts(), []);
  const { FileStorage } = await import('../player/headless/file-storage.ts');
  const queued = await new FileStorage(t.dir).pendingImpressions();
  assert.equal(queued.length, 2);
  // Back online: sent, counted, and dropped from the queue.
  const again = await terminal(server, { dir: t.dir });
  for (let i = 0; i < 50 && (await server.repo.impressionCounts())[0]?.shown !== 2; i++) await sleep(50);
  for (let i = 0; i < 50 && (await new FileStorage(t.dir).pendingImpressions()).length > 0; i++)
    await sleep(50);
  assert.deepEqual(await server.repo.impressionCounts(), [{ adId: ad.adId, shown: 2, completed: 1 }]);
  assert.deepEqual(await new FileStorage(t.dir).pendingImpressions(), []);
  // A resend of the same impression (a lost acknowledgement) is not counted twice.
  const first = queued[0] as (typeof queued)[number];
  assert.equal(await server.repo.recordImpression({ ...first, terminalId: again.core.terminalId }), false);
  assert.deepEqual(await server.repo.impressionCounts(), [{ adId: ad.adId, shown: 2, completed: 1 }]);
  // The report shows impressions and completion rate by ad and by the viewer's segments.
  await server.close();
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'server/cli.ts', 'report', '--data', dataDir], {
    encoding: 'utf8',
    env: storeEnv(server),
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`Ad impressions by ad .*\\n\\s+${ad.adId.slice(0, 8)} "Everyone"\\s+2\\s+1\\s+50\\.0%`),
  );
  assert.match(r.stdout, /Ad impressions by region\n\s+unknown\s+2\s+1\s+50\.0%/);
});
