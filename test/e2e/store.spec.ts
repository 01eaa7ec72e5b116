/**
 * The store app end to end: Debian Chromium driven by Playwright against a real server on loopback,
 * with a real headless terminal receiving what the customer rents.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { StoredRental } from '../../player/core/terminal-storage.ts';
import { FileStorage } from '../../player/headless/file-storage.ts';
import { cleanup, collect, customer, tempDir, terminal, testServer } from '../harness.ts';
import { openPage, screenshot, sharedBrowser } from './browser.ts';

const browser = sharedBrowser();
afterEach(cleanup);

async function signUp(
  page: Page,
  email = `e2e${Date.now()}${Math.random().toString(36).slice(2, 6)}@example.com`,
) {
  await page.getByTestId('auth-switch').click();
  await page.getByTestId('name').fill('Grace Hopper');
  await page.getByTestId('email').fill(email);
  await page.getByTestId('password').fill('a long enough password');
  await page.getByTestId('age-band').selectOption('35-44');
  await page.getByTestId('region').selectOption('north');
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('account-name').waitFor();
  return email;
}

async function linkInUi(page: Page, code: string, name: string) {
  await page.getByTestId('nav-terminals').click();
  await page.getByTestId('pairing-code').fill(code);
  await page.getByTestId('terminal-name').fill(name);
  await page.getByTestId('link-submit').click();
  await page.getByTestId('link-ok').waitFor();
}

/** A terminal whose disk is slow, so a person (and the test) can watch the progress bar move. */
function slowStorage(dir: string, delayMs: number) {
  const base = new FileStorage(dir);
  return Object.assign(Object.create(base) as FileStorage, {
    // One chunk at a time (no batched writes), so every chunk passes through the hook below.
    writeChunks: undefined,
    writeChunk: async (r: StoredRental, i: number, c: Uint8Array) => {
      await new Promise((res) => setTimeout(res, delayMs));
      return base.writeChunk(r, i, c);
    },
  });
}

test('sign up, link a terminal by its code, rent for it, watch the delivery, the terminal decrypts', async () => {
  const server = await testServer();
  const { page, errors } = await openPage(browser(), `${server.url}store/`);
  await page.getByTestId('auth-form').waitFor();
  await screenshot(page, '01-sign-in');
  await signUp(page);
  await page.getByTestId('catalog-grid').waitFor();
  assert.equal(await page.getByTestId('catalog-grid').locator('li').count(), 3);
  await page.getByTestId('search').fill('mandel');
  assert.equal(await page.getByTestId('catalog-grid').locator('li').count(), 1);
  await page.getByTestId('search').fill('');
  await page.getByTestId('genre-filter').selectOption('Drama');
  assert.deepEqual(await page.getByTestId('catalog-grid').locator('strong').allTextContents(), [
    'Life in Cells',
  ]);
  await page.getByTestId('genre-filter').selectOption('');
  await screenshot(page, '02-catalog');

  const dir = tempDir('rd-term-');
  const t = await terminal(server, { dir, storage: slowStorage(dir, 60), progressEvery: 2 });
  await linkInUi(page, t.core.pairingCode as string, 'Living room');
  await t.log.waitFor('linked');
  const row = page.getByTestId(`terminal-${t.core.terminalId}`);
  await row.getByText('online').waitFor();
  await screenshot(page, '03-terminals');

  await page.getByTestId('nav-catalog').click();
  await page.getByTestId('title-102').click();
  await page.getByTestId('order-form').waitFor();
  assert.match(await page.getByTestId('terminal-select').innerText(), /Living room \(online\)/);
  await page.getByTestId('period-custom').check();
  await page.getByTestId('period-amount').fill('30');
  await page.getByTestId('period-unit').selectOption('minutes');
  assert.match(await page.getByTestId('order-summary').innerText(), /Watchable from now until .* \(30 min\)/);
  await screenshot(page, '04-title-and-order');
  await page.getByTestId('order-submit').click();

  const rental = page.locator('[data-testid^="rental-"][data-status]').first();
  await rental.waitFor();
  // The progress bar moves: seen part way, then the status reaches "key delivered".
  await page.waitForFunction(() => {
    const bar = document.querySelector('[data-testid="rental-progress"]');
    const v = Number(bar?.getAttribute('aria-valuenow'));
    return v > 0 && v < 100;
  });
  await screenshot(page, '05-rentals-delivering');
  await rental.getByText(/Key delivered/).waitFor({ timeout: 20_000 });
  assert.equal(await rental.getAttribute('data-status'), 'window-open');
  assert.match(await rental.innerText(), /left, until/);
  await screenshot(page, '06-rentals-key-delivered');

  const orderId = ((await rental.getAttribute('data-testid')) as string).slice('rental-'.length);
  await t.log.waitFor('licence', (e) => e.orderId === orderId);
  const item = await server.repo.catalogItem(102);
  const original = readFileSync(server.media.path(item?.mediaFile as string));
  const clear = await collect(t.core, orderId);
  assert.equal(
    createHash('sha256').update(clear).digest('hex'),
    createHash('sha256').update(original).digest('hex'),
  );

  // The order was classified with what the customer told us at sign-up (claims 16/22/28).
  const [record] = await server.repo.classifications(0);
  assert.deepEqual([record?.ageBand, record?.region, record?.genre], ['35-44', 'north', 'science fiction']);

  // The session survives a restart of the app (a reload here).
  await page.reload();
  await page.getByTestId('account-name').waitFor();
  assert.deepEqual(errors, []);
});

test('a future delivery start shows "scheduled" and nothing reaches the terminal early', async () => {
  const server = await testServer();
  const { page } = await openPage(browser(), `${server.url}store/`);
  await signUp(page);
  const t = await terminal(server);
  await linkInUi(page, t.core.pairingCode as string, 'Bedroom');
  await page.getByTestId('nav-catalog').click();
  await page.getByTestId('title-101').click();
  await page.getByTestId('schedule-delivery-start').check();
  const inTwoHours = await page.evaluate(() => {
    const d = new Date(Date.now() + 2 * 3600_000);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  });
  await page.getByTestId('schedule-at').fill(inTwoHours);
  assert.match(await page.getByTestId('order-summary').innerText(), /Delivery starts/);
  await page.getByTestId('order-submit').click();
  const rental = page.locator('[data-testid^="rental-"][data-status]').first();
  await rental.getByText('Scheduled').waitFor();
  await screenshot(page, '07-rentals-scheduled');
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(t.log.find('offer'), undefined, 'no content before the delivery start');
  assert.equal(t.log.find('licence'), undefined, 'no key before its time');
  assert.equal(await rental.getAttribute('data-status'), 'scheduled');
});

test('the order form shows validation errors, and the server refuses a forged terminal', async () => {
  const server = await testServer();
  const { page } = await openPage(browser(), `${server.url}store/`);
  await signUp(page);
  const t = await terminal(server);
  await linkInUi(page, t.core.pairingCode as string, 'Kitchen');
  await page.getByTestId('nav-catalog').click();
  await page.getByTestId('title-103').click();

  await page.getByTestId('period-custom').check();
  await page.getByTestId('period-amount').fill('0');
  await page.getByTestId('order-submit').click();
  await page.getByTestId('error-period').getByText('greater than 0').waitFor();
  await page.getByTestId('period-amount').fill('40');
  await page.getByTestId('period-unit').selectOption('days');
  await page.getByTestId('error-period').getByText('at most 30 days').waitFor();
  await page.getByTestId('period-amount').fill('2');

  await page.getByTestId('schedule-key-delivery').check();
  await page.getByTestId('schedule-at').fill('2020-01-01T10:00');
  await page.getByTestId('error-schedule').getByText('in the past').waitFor();
  await screenshot(page, '08-order-validation');
  await page.getByTestId('schedule-now').check();

  // A terminal of another account, slipped into the form through the DOM: refused in the form...
  const other = await customer(server);
  const theirs = await terminal(server);
  await other.request('terminal.link', { code: theirs.core.pairingCode as string, name: 'Not yours' });
  await page.evaluate((id) => {
    const select = document.querySelector('[data-testid="terminal-select"]') as HTMLSelectElement;
    const opt = document.createElement('option');
    opt.value = id;
    opt.textContent = 'forged';
    select.appendChild(opt);
    select.value = id;
    select.dispatchEvent(new Event('change', { bubbles: true }));
  }, theirs.core.terminalId);
  await page.getByTestId('error-terminal').waitFor();
  // ...and by the server, when the request is forged from the page with this customer's session.
  // Written as source text: tsx's name helpers do not exist inside the page.
  const forge = `(async () => {
    const token = localStorage.getItem('rental.session');
    const ws = new WebSocket('ws://' + location.host + '/ws');
    await new Promise((r) => ws.addEventListener('open', r));
    const ask = (msg) => new Promise((resolve) => {
      ws.addEventListener('message', (ev) => { const m = JSON.parse(ev.data); if (m.re === msg.id) resolve(m); });
      ws.send(JSON.stringify(msg));
    });
    await ask({ type: 'auth.resume', id: 1, token });
    const r = await ask({ type: 'order.place', id: 2, itemNumber: 103, terminalId: ${JSON.stringify(theirs.core.terminalId)},
      periodSeconds: 3600, schedule: { mode: 'now' } });
    ws.close();
    return r;
  })()`;
  const reply = (await page.evaluate(forge)) as { type: string; code?: string };
  assert.equal(reply.type, 'error');
  assert.equal(reply.code, 'NOT_FOUND');
  assert.equal(theirs.log.find('offer'), undefined);
  assert.equal((await other.request('order.list', {})).orders.length, 0);
});

test('account errors are clear: wrong password, taken e-mail, server unreachable with retry', async () => {
  const server = await testServer();
  const { page } = await openPage(browser(), `${server.url}store/`);
  const email = await signUp(page);
  await page.getByTestId('sign-out').click();
  await page.getByTestId('email').fill(email);
  await page.getByTestId('password').fill('not the password');
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('auth-error').getByText('wrong e-mail or password').waitFor();
  await page.getByTestId('auth-switch').click();
  await page.getByTestId('name').fill('Someone');
  await page.getByTestId('email').fill(email);
  await page.getByTestId('password').fill('another long password');
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('auth-error').getByText('already exists').waitFor();
  await screenshot(page, '09-auth-error');

  await server.close();
  await page.getByTestId('conn-banner').getByText('Can’t reach the store server').waitFor();
  await page.getByTestId('conn-retry').waitFor();
  await screenshot(page, '10-server-unreachable');
});

test('terminals: rename and unlink from the store', async () => {
  const server = await testServer();
  const { page } = await openPage(browser(), `${server.url}store/`);
  await signUp(page);
  const t = await terminal(server);
  await linkInUi(page, t.core.pairingCode as string, 'Old name');
  const row = page.getByTestId(`terminal-${t.core.terminalId}`);
  await row.getByTestId('rename').click();
  await row.getByTestId('rename-input').fill('Den');
  await row.getByTestId('rename-save').click();
  await row.getByTestId('terminal-label').getByText('Den').waitFor();
  await row.getByTestId('unlink').click();
  await row.getByTestId('unlink-confirm').click();
  await row.waitFor({ state: 'detached' });
  await t.log.waitFor('linked', (e) => !e.linked);
  assert.match(await page.getByTestId('terminal-count').innerText(), /^0 of 5/);
});
