/**
 * The player app end to end in Debian Chromium: two browser contexts (store and player) against a
 * real server. The player receives, stores in IndexedDB, plays through Media Source Extensions,
 * refuses outside the window, wipes at expiry, resumes a broken download, and refuses a clock set back.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import type { Page } from 'playwright-core';
import { addAd } from '../../server/key/ads.ts';
import { cleanup, customer, rentNow, testServer } from '../harness.ts';
import { openPage, screenshot, sharedBrowser } from './browser.ts';

const browser = sharedBrowser();
afterEach(cleanup);

async function openPlayer(url: string) {
  const { page, errors } = await openPage(browser(), `${url}player/`);
  const code = page.getByTestId('pairing-code');
  await page.waitForFunction(() =>
    /^[A-Z2-9]{4}-[A-Z2-9]{4}$/.test(
      document.querySelector('[data-testid="pairing-code"]')?.textContent ?? '',
    ),
  );
  return { page, errors, code: (await code.textContent()) as string };
}

/** Counts what IndexedDB holds for an order (as source text: the page has no tsx helpers). */
async function idbHolds(
  page: Page,
  orderId: string,
): Promise<{ chunks: number; licence: boolean; rental: string }> {
  return page.evaluate(`(async () => {
    const db = await new Promise((ok, no) => { const r = indexedDB.open('rental-player'); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
    const get = (store, fn) => new Promise((ok) => { const t = db.transaction(store, 'readonly'); const q = fn(t.objectStore(store)); q.onsuccess = () => ok(q.result); });
    const chunks = await get('chunks', (s) => s.index('orderId').count(${JSON.stringify(orderId)}));
    const licence = await get('licences', (s) => s.get(${JSON.stringify(orderId)}));
    const rental = await get('rentals', (s) => s.get(${JSON.stringify(orderId)}));
    db.close();
    return { chunks, licence: Boolean(licence), rental: rental ? (rental.expired ? 'expired' : 'active') : 'none' };
  })()`);
}

async function waitPlaying(page: Page) {
  await page.waitForFunction(
    () => {
      const v = document.querySelector('[data-testid="video"]') as HTMLVideoElement | null;
      return Boolean(v && !v.error && v.currentTime > 1.5);
    },
    undefined,
    { timeout: 20_000 },
  );
  return page.evaluate(() => {
    const v = document.querySelector('[data-testid="video"]') as HTMLVideoElement;
    return { error: v.error?.message ?? null, currentTime: v.currentTime, duration: v.duration };
  });
}

test('store rents to the player: progress, ready, the segment ad on the idle screen, a pre-roll, then the film', async () => {
  const server = await testServer({ deliveryBytesPerSecond: 600 * 1024 });
  const ad = await addAd(server.repo, server.dataDir, {
    text: 'Tonight: popcorn at half price',
    creative: 'media/demo/ad-popcorn.webm',
    segments: { genre: ['drama'] },
    startsAt: Date.now() - 1000,
    endsAt: Date.now() + 3_600_000,
    weight: 1,
  });
  const player = await openPlayer(server.url);
  await screenshot(player.page, 'player-01-pairing');
  // The store in its own browser context, as a person would use it.
  const { page: store } = await openPage(browser(), `${server.url}store/`);
  await store.getByTestId('auth-switch').click();
  await store.getByTestId('name').fill('Viewer');
  await store.getByTestId('email').fill(`viewer${Date.now()}@example.com`);
  await store.getByTestId('password').fill('a long enough password');
  await store.getByTestId('auth-submit').click();
  await store.getByTestId('nav-terminals').click();
  await store.getByTestId('pairing-code').fill(player.code);
  await store.getByTestId('terminal-name').fill('TV');
  await store.getByTestId('link-submit').click();
  await store.getByTestId('link-ok').waitFor();
  await player.page.getByTestId('pairing').waitFor({ state: 'detached' });
  await store.getByTestId('nav-catalog').click();
  await store.getByTestId('title-103').click();
  await store.getByTestId('order-submit').click();
  await store.locator('[data-testid^="rental-"][data-status]').first().waitFor();

  const row = player.page.locator('[data-testid^="rental-"]').first();
  await row.and(player.page.locator('[data-state="downloading"]')).waitFor();
  await player.page.getByTestId('download-progress').waitFor();
  await screenshot(player.page, 'player-02-downloading');
  await row.and(player.page.locator('[data-state="ready"]')).waitFor({ timeout: 20_000 });
  assert.match(
    (await row.getByTestId('time-left').textContent()) as string,
    /Ready · (1 d 23 h|2 d 0 h) left/,
  );
  // The drama rental classified this customer: the drama ad comes with the licence.
  await player.page.getByTestId('ad').getByText('popcorn at half price').waitFor();
  await player.page.waitForFunction(
    () =>
      ((document.querySelector('[data-testid="ad"] video') as HTMLVideoElement | null)?.videoWidth ?? 0) > 0,
  );
  await screenshot(player.page, 'player-03-ready');
  // Seen for three seconds: one completed impression reaches the server.
  for (let i = 0; i < 60 && (await server.repo.impressionCounts()).length === 0; i++)
    await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(
    (await server.repo.impressionCounts()).map((c) => [c.shown, c.completed]),
    [[1, 1]],
  );
  // The pre-roll that came with the film plays first, from the terminal's own storage, then the film.
  await row.locator('button').click();
  const preroll = player.page.getByTestId('preroll');
  await preroll.waitFor();
  assert.equal(await preroll.getAttribute('data-ad-id'), ad.adId);
  await player.page.waitForFunction(
    () =>
      ((document.querySelector('[data-testid="preroll"] video') as HTMLVideoElement | null)?.currentTime ??
        0) > 0.5,
  );
  const filmDuringAd = await player.page.evaluate(
    () => (document.querySelector('[data-testid="video"]') as HTMLVideoElement).currentTime,
  );
  assert.equal(filmDuringAd, 0, 'the film waits for the pre-roll');
  await screenshot(player.page, 'player-04-preroll');
  await preroll.waitFor({ state: 'detached', timeout: 10_000 });
  const v = await waitPlaying(player.page);
  assert.equal(v.error, null);
  assert.ok(v.duration > 11 && v.duration < 13, `duration ${v.duration}`);
  await screenshot(player.page, 'player-05-playing');
  // The pre-roll counts as a second completed impression; played once, the film starts without it.
  for (let i = 0; i < 60 && (await server.repo.impressionCounts())[0]?.shown !== 2; i++)
    await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(
    (await server.repo.impressionCounts()).map((c) => [c.shown, c.completed]),
    [[2, 2]],
  );
  await player.page.getByTestId('back').click();
  await row.locator('button').click();
  await waitPlaying(player.page);
  assert.equal(await preroll.count(), 0);
  assert.deepEqual(player.errors, []);
});

test('outside the window: playback stops at notAfter, refuses afterwards, and IndexedDB is wiped', async () => {
  const server = await testServer();
  const player = await openPlayer(server.url);
  const c = await customer(server);
  const { terminal } = await c.request('terminal.link', { code: player.code, name: 'TV' });
  const order = await rentNow(c, terminal.terminalId, 101, 7);
  const row = player.page.getByTestId(`rental-${order.orderId}`);
  await row.and(player.page.locator('[data-state="ready"]')).waitFor();
  const before = await idbHolds(player.page, order.orderId);
  assert.equal(before.licence, true);
  assert.equal(before.chunks, order.totalChunks);
  await player.page.getByTestId(`play-${order.orderId}`).click();
  await waitPlaying(player.page);
  await player.page
    .getByTestId('playback-message')
    .getByText('rental period has ended')
    .waitFor({ timeout: 15_000 });
  assert.equal(
    await player.page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).paused),
    true,
  );
  await screenshot(player.page, 'player-05-expired-during-playback');
  const afterExpiry = await idbHolds(player.page, order.orderId);
  assert.deepEqual(
    afterExpiry,
    { chunks: 0, licence: false, rental: 'expired' },
    'key and chunks gone, row kept',
  );
  await player.page.getByTestId('back').click();
  await row.and(player.page.locator('[data-state="expired"]')).waitFor();
  assert.equal(
    await player.page.getByTestId(`play-${order.orderId}`).count(),
    0,
    'no Play button after the window',
  );
  await screenshot(player.page, 'player-06-library-expired');
});

test('a key released later: the player waits with the time, then plays', async () => {
  const server = await testServer();
  const player = await openPlayer(server.url);
  const c = await customer(server);
  const { terminal } = await c.request('terminal.link', { code: player.code, name: 'TV' });
  const { order } = await c.request('order.place', {
    itemNumber: 101,
    terminalId: terminal.terminalId,
    periodSeconds: 600,
    schedule: { mode: 'key-delivery', at: Date.now() + 4000 },
  });
  const row = player.page.getByTestId(`rental-${order.orderId}`);
  await row.and(player.page.locator('[data-state="waiting-key"]')).waitFor();
  assert.match((await row.textContent()) as string, /the key arrives .* \(in \d+ s\)/);
  await screenshot(player.page, 'player-07-waiting-for-key');
  await row.and(player.page.locator('[data-state="ready"]')).waitFor({ timeout: 15_000 });
});

test('a reload mid-download resumes where it stopped', async () => {
  const server = await testServer({ deliveryBytesPerSecond: 300 * 1024 });
  const player = await openPlayer(server.url);
  const c = await customer(server);
  const { terminal } = await c.request('terminal.link', { code: player.code, name: 'TV' });
  const order = await rentNow(c, terminal.terminalId, 102);
  const bar = player.page.getByTestId(`rental-${order.orderId}`).getByTestId('download-progress');
  await player.page.waitForFunction(
    (id) =>
      Number(
        document
          .querySelector(`[data-testid="rental-${id}"] [role="progressbar"]`)
          ?.getAttribute('aria-valuenow'),
      ) >= 30,
    order.orderId,
  );
  const stored = (await idbHolds(player.page, order.orderId)).chunks;
  assert.ok(stored > 0 && stored < order.totalChunks, `stored ${stored}`);
  await player.page.reload();
  // Straight after the reload, before any new chunk, the library shows what was already stored.
  const shown = Number(await bar.getAttribute('aria-valuenow'));
  assert.ok(shown >= 30, `shown ${shown}% after reload`);
  const row = player.page.getByTestId(`rental-${order.orderId}`);
  await row.and(player.page.locator('[data-state="ready"]')).waitFor({ timeout: 20_000 });
  // The server's record trails the terminal's by the time the last progress report takes to arrive.
  let o = await server.repo.orderById(order.orderId);
  for (let i = 0; i < 50 && o?.contentState !== 'delivered'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    o = await server.repo.orderById(order.orderId);
  }
  assert.equal(o?.contentState, 'delivered');
  await row.locator('button').click();
  await waitPlaying(player.page);
});

test('offline, a clock set back is refused; with the right time offline playback works', async () => {
  const server = await testServer();
  const player = await openPlayer(server.url);
  const c = await customer(server);
  const { terminal } = await c.request('terminal.link', { code: player.code, name: 'TV' });
  const order = await rentNow(c, terminal.terminalId, 101, 3600);
  await player.page
    .getByTestId(`rental-${order.orderId}`)
    .and(player.page.locator('[data-state="ready"]'))
    .waitFor();
  // Cut the player off from the server (its page still loads), restart it, and turn its clock back 3 hours.
  await player.page.routeWebSocket(/\/ws$/, (ws) => ws.close());
  await player.page.clock.setFixedTime(Date.now() - 3 * 3600_000);
  await player.page.reload();
  await player.page.getByTestId('player-conn').getByText('Offline').waitFor();
  const row = player.page.getByTestId(`rental-${order.orderId}`);
  await row.and(player.page.locator('[data-state="clock-blocked"]')).waitFor();
  assert.match((await row.getByTestId('clock-blocked').textContent()) as string, /clock was set back/);
  assert.equal(await player.page.getByTestId(`play-${order.orderId}`).count(), 0, 'no way to play');
  await screenshot(player.page, 'player-08-clock-turned-back');
  await player.page.clock.setFixedTime(Date.now());
  await player.page.reload();
  await player.page.getByTestId('player-conn').getByText('Offline').waitFor();
  await player.page.getByTestId(`play-${order.orderId}`).click();
  await waitPlaying(player.page);
});
