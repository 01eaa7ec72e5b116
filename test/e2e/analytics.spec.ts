/**
 * The admin analytics view in Debian Chromium: an admin sees the rental and the impression in the
 * charts and can export the same numbers as CSV; a customer cannot reach it, in the UI or over the API.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import type { Page } from 'playwright-core';
import { addAd } from '../../server/key/ads.ts';
import { RentalError } from '../../shared/errors.ts';
import { cleanup, customer, linkedPair, rentNow, sleep, testServer } from '../harness.ts';
import { openPage, screenshot, sharedBrowser } from './browser.ts';

const browser = sharedBrowser();
afterEach(cleanup);

async function signIn(page: Page, email: string) {
  await page.getByTestId('auth-form').waitFor();
  await page.getByTestId('email').fill(email);
  await page.getByTestId('password').fill('correct horse battery');
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('account-name').waitFor();
}

test('an admin sees rentals and impressions drawn as charts and exports them as CSV', async () => {
  const server = await testServer();
  const now = Date.now();
  const ad = await addAd(server.repo, server.dataDir, {
    text: 'Popcorn time',
    creative: 'media/demo/life-in-cells.jpg',
    segments: {},
    startsAt: now - 1000,
    endsAt: now + 3_600_000,
    weight: 1,
  });
  // A customer rents two titles and their terminal shows the ad once to the end, once skipped.
  const { c, t } = await linkedPair(server);
  for (const itemNumber of [101, 103]) {
    const order = await rentNow(c, t.core.terminalId, itemNumber, 3 * 3600);
    await t.log.waitFor('licence', (e) => e.orderId === order.orderId);
  }
  await t.core.recordImpression(ad.adId, true);
  await t.core.recordImpression(ad.adId, false);
  for (let i = 0; i < 100 && (await server.repo.impressionRows(0)).length < 2; i++) await sleep(20);

  const admin = await customer(server);
  assert.equal(await server.repo.setCustomerRole(admin.email, 'admin'), true);
  const { page, errors } = await openPage(browser(), `${server.url}store/`);
  await signIn(page, admin.email);
  await page.getByTestId('nav-analytics').click();
  await page.getByTestId('analytics').waitFor();
  await page.getByTestId('kpi-rentals').waitFor();
  assert.equal(await page.getByTestId('kpi-rentals').textContent(), '2');
  assert.equal(await page.getByTestId('kpi-impressions').textContent(), '2');
  assert.equal(await page.getByTestId('kpi-completion').textContent(), '50.0 %');
  // Every chart is a canvas Chart.js drew on (a drawn canvas is not blank).
  for (const id of ['chart-perDay', 'chart-genre', 'chart-dayPart', 'chart-region', 'chart-impressions-ad']) {
    const canvas = page.getByTestId(id).locator('canvas');
    await canvas.waitFor();
    // A source string, not a function: tsx rewrites functions in ways the page cannot run.
    const painted = await page.evaluate(
      `(() => { const c = document.querySelector('[data-testid="${id}"] canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()`,
    );
    assert.ok((painted as number) > 500, `${id} is drawn (${painted} painted pixels)`);
  }
  await page.getByTestId('chart-genre').locator('summary').click();
  assert.match((await page.getByTestId('chart-genre').locator('table').textContent()) ?? '', /drama1/);
  await screenshot(page, '20-analytics');

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('csv').click()]);
  assert.match(download.suggestedFilename(), /^rental-analytics-\d{4}-\d{2}-\d{2}-30d\.csv$/);
  const csv = readFileSync((await download.path()) as string, 'utf8');
  const lines = csv.trim().split('\r\n');
  assert.equal(lines[0], 'section,value,count,completed,completion_rate');
  assert.ok(lines.includes('rentals_by_genre,drama,1,,'), csv);
  const today = new Date().toISOString().slice(0, 10);
  assert.ok(lines.includes(`rentals_per_day,${today},2,,`), csv);
  assert.ok(
    lines.some((l) => l.startsWith('impressions_by_ad,') && l.endsWith(',2,1,0.500')),
    csv,
  );
  assert.deepEqual(errors, []);
});

test('a customer cannot reach analytics: no tab, a refusal on the page, FORBIDDEN from the server', async () => {
  const server = await testServer();
  const c = await customer(server);
  await assert.rejects(c.request('analytics.report', {}), (err: unknown) => {
    assert.ok(err instanceof RentalError);
    assert.equal(err.code, 'FORBIDDEN');
    return true;
  });
  const { page, errors } = await openPage(browser(), `${server.url}store/`);
  await signIn(page, c.email);
  assert.equal(await page.getByTestId('nav-analytics').count(), 0);
  await page.goto(`${server.url}store/#/analytics`);
  await page.getByTestId('analytics-forbidden').waitFor();
  assert.equal(await page.locator('canvas').count(), 0);
  // Granted, the same session can read it at once; revoked, it is refused again at once.
  await server.repo.setCustomerRole(c.email, 'admin');
  const report = await c.request('analytics.report', { days: 7 });
  assert.equal(report.days, 7);
  await server.repo.setCustomerRole(c.email, 'customer');
  await assert.rejects(c.request('analytics.report', {}), /admin/);
  assert.deepEqual(errors, []);
});
