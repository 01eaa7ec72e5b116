/**
 * Claims 14/20/26: the content store attaches a pre-roll to the content it delivers, signed by the
 * server; the terminal keeps only a genuine one and it plays once, before the title. A title can
 * have pre-rolls turned off.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { TerminalError } from '../player/core/terminal-core.ts';
import { addAd } from '../server/key/ads.ts';
import { cryptoReady, generateIdentity, randomBytes, toB64 } from '../shared/crypto.ts';
import { signPreroll } from '../shared/preroll.ts';
import { cleanup, fakeServer, linkedPair, rentNow, sleep, terminal, testServer } from './harness.ts';

afterEach(cleanup);

const CREATIVE = 'media/demo/life-in-cells.jpg';

async function serverWithAd() {
  const server = await testServer();
  const now = Date.now();
  const ad = await addAd(server.repo, server.dataDir, {
    text: 'Popcorn time',
    creative: CREATIVE,
    segments: {},
    startsAt: now - 1000,
    endsAt: now + 3_600_000,
    weight: 1,
  });
  return { server, ad };
}

test('a pre-roll travels with the delivery, plays once before the title, and counts as an impression', async () => {
  const { server, ad } = await serverWithAd();
  const { c, t } = await linkedPair(server);
  const order = await rentNow(c, t.core.terminalId, 101);
  const got = await t.log.waitFor('preroll', (e) => e.orderId === order.orderId);
  assert.equal(got.adId, ad.adId);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  // It arrived before the first chunk was stored, so no title can start without it.
  const firstProgress = t.log.find('progress', (e) => e.orderId === order.orderId);
  assert.ok(firstProgress && got.at <= firstProgress.at);

  const pending = await t.core.pendingPreroll(order.orderId);
  assert.ok(pending, 'the pre-roll waits to be played');
  assert.equal(pending.text, 'Popcorn time');
  assert.equal(pending.mimeType, 'image/jpeg');
  assert.deepEqual(Buffer.from(pending.creative), readFileSync(CREATIVE));

  // The headless terminal saves it beside the film for the media player to play first.
  const out = join(t.dir, 'film.webm');
  const adFile = join(t.dir, 'ad.jpg');
  const play = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'player/headless/cli.ts',
      'play',
      order.orderId,
      '--out',
      out,
      '--preroll',
      adFile,
      '--data',
      t.dir,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(play.status, 0, play.stderr);
  assert.match(play.stderr, /pre-roll "Popcorn time" \(image\/jpeg\) written to/);
  assert.deepEqual(readFileSync(adFile), readFileSync(CREATIVE));
  assert.deepEqual(readFileSync(out), readFileSync('media/demo/colour-bars-at-dawn.webm'));

  await t.core.prerollPlayed(order.orderId);
  assert.equal(await t.core.pendingPreroll(order.orderId), undefined, 'played once, never again');
  for (let i = 0; i < 50 && (await server.repo.impressionRows(0)).length === 0; i++) await sleep(20);
  const rows = await server.repo.impressionRows(0);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.adId, ad.adId);
  assert.equal(rows[0]?.completed, true);
});

test('a title with pre-rolls turned off is delivered without one', async () => {
  const { server } = await serverWithAd();
  assert.equal(await server.repo.setCatalogPreroll(102, false), true);
  assert.equal(await server.repo.setCatalogPreroll(999, false), false, 'an unknown item says so');
  const { c, t } = await linkedPair(server);
  const order = await rentNow(c, t.core.terminalId, 102);
  await t.log.waitFor('stored', (e) => e.orderId === order.orderId);
  assert.equal(t.log.find('preroll'), undefined);
  assert.equal(await t.core.pendingPreroll(order.orderId), undefined);
});

test('a pre-roll altered on the terminal stops the title from playing', async () => {
  const { server } = await serverWithAd();
  const { c, t } = await linkedPair(server);
  const order = await rentNow(c, t.core.terminalId, 101);
  await t.log.waitFor('preroll', (e) => e.orderId === order.orderId);
  // Someone swaps the ad on disk for a creative of their own.
  writeFileSync(join(t.dir, 'rentals', order.orderId, 'preroll.bin'), randomBytes(1000));
  await assert.rejects(t.core.pendingPreroll(order.orderId), (err: unknown) => {
    assert.ok(err instanceof TerminalError);
    assert.equal(err.code, 'TAMPERED');
    return true;
  });
});

/**
 * A server the terminal trusts (it pinned this key at first contact) sends pre-rolls that are forged
 * (another key), lifted from another order, or carry a swapped creative: each is refused and nothing
 * is stored. A genuine one, sent last, is kept, which shows the refusals are about the pre-roll.
 */
test('forged, lifted and swapped pre-rolls are refused; only the genuine one is kept', async () => {
  await cryptoReady();
  const pinned = generateIdentity();
  const forger = generateIdentity();
  const orderId = crypto.randomUUID();
  const creative = new Uint8Array(readFileSync(CREATIVE));
  const ad = { orderId, adId: crypto.randomUUID(), text: 'Genuine', mimeType: 'image/jpeg' };
  const other = crypto.randomUUID();
  const attempts = [
    { why: 'forged', preroll: signPreroll(forger.signSecretKey, ad, creative), creative },
    {
      why: 'lifted',
      preroll: signPreroll(pinned.signSecretKey, { ...ad, orderId: other }, creative),
      creative,
    },
    { why: 'swapped', preroll: signPreroll(pinned.signSecretKey, ad, creative), creative: randomBytes(900) },
    { why: 'genuine', preroll: signPreroll(pinned.signSecretKey, ad, creative), creative },
  ];
  const server = await fakeServer(pinned, (m, ws) => {
    const send = (x: unknown) => ws.send(JSON.stringify(x));
    if (m.type === 'terminal.auth') {
      send({
        type: 'delivery.offer',
        orderId,
        itemNumber: 101,
        title: 'Test',
        mimeType: 'video/webm',
        size: 10,
        chunkSize: 65536,
        totalChunks: 1,
        notBefore: Date.now(),
        notAfter: Date.now() + 600_000,
      });
    } else if (m.type === 'delivery.accept') {
      for (const a of attempts)
        send({ type: 'delivery.preroll', orderId, preroll: a.preroll, creative: toB64(a.creative) });
    }
  });
  const t = await terminal(server);
  await t.log.waitFor('preroll');
  const refusals = t.log.events.filter((e) => e.type === 'rejected');
  assert.equal(refusals.length, 3, 'forged, lifted and swapped are each refused');
  for (const r of refusals) assert.match((r as { reason: string }).reason, /^pre-roll refused/);
  const kept = await t.core.pendingPreroll(orderId);
  assert.equal(kept?.adId, ad.adId);
  assert.deepEqual(kept?.creative, creative);
});
