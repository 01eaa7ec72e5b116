/**
 * The same store flow through the Electron shell, via Playwright's Electron launcher. The Electron
 * binary cannot be downloaded on every machine (npm's install script fetches it from outside the
 * registry); where it is missing this test says so and skips. The renderer it would load is the one
 * store.spec.ts drives in Chromium, and the shell's launcher logic is checked below either way.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import { _electron } from 'playwright-core';
import { buildStoreShell, electronBinary } from '../../app/electron/shell-launcher.ts';
import { cleanup, tempDir, terminal, testServer } from '../harness.ts';
import { screenshot } from './browser.ts';

afterEach(cleanup);

test('the store shell bundles with a locked-down window and the narrow preload bridge', async () => {
  const out = tempDir('rd-shell-');
  const main = await buildStoreShell(out);
  assert.ok(existsSync(main));
  const src = readFileSync(main, 'utf8');
  assert.match(src, /contextIsolation:\s*!0|contextIsolation:\s*true/);
  assert.match(src, /nodeIntegration:\s*!1|nodeIntegration:\s*false/);
  assert.match(src, /sandbox:\s*!0|sandbox:\s*true/);
  assert.match(src, /requestSingleInstanceLock/);
  const preload = readFileSync(`${out}/preload.cjs`, 'utf8');
  assert.match(preload, /exposeInMainWorld\("rentalShell"/);
  assert.doesNotMatch(
    preload,
    /exposeInMainWorld\([^)]*ipcRenderer\)/,
    'ipcRenderer itself is never exposed',
  );
});

const bin = electronBinary();
const skip =
  'missing' in bin
    ? `Electron unavailable here: ${bin.missing}. The same renderers are covered in Chromium by store.spec.ts and player.spec.ts.`
    : false;

test('through Electron: sign up, link a terminal and see it online', { skip }, async () => {
  const server = await testServer();
  const main = await buildStoreShell(tempDir('rd-shell-'));
  const app = await _electron.launch({
    executablePath: (bin as { path: string }).path,
    args: ['--no-sandbox', main, '--server', server.url],
  });
  try {
    const page = await app.firstWindow();
    const info = await page.evaluate(`window.rentalShell.info()`);
    assert.deepEqual((info as { ok: boolean }).ok, true);
    assert.equal(await page.evaluate('typeof require'), 'undefined', 'no Node in the renderer');
    await page.getByTestId('auth-switch').click();
    await page.getByTestId('name').fill('Electron User');
    await page.getByTestId('email').fill(`el${Date.now()}@example.com`);
    await page.getByTestId('password').fill('a long enough password');
    await page.getByTestId('auth-submit').click();
    await page.getByTestId('catalog-grid').waitFor();
    const t = await terminal(server);
    await page.getByTestId('nav-terminals').click();
    await page.getByTestId('pairing-code').fill(t.core.pairingCode as string);
    await page.getByTestId('link-submit').click();
    await page.getByTestId(`terminal-${t.core.terminalId}`).getByText('online').waitFor();
    await screenshot(page, 'electron-terminals');
  } finally {
    await app.close();
  }
});

test('the player shell bundles with kiosk and autostart options and a bridge limited to key protection', async () => {
  const { buildShell } = await import('../../app/electron/shell-launcher.ts');
  const out = tempDir('rd-shell-');
  const main = readFileSync(await buildShell('player', out), 'utf8');
  assert.match(main, /contextIsolation:\s*!0|contextIsolation:\s*true/);
  assert.match(main, /sandbox:\s*!0|sandbox:\s*true/);
  assert.match(main, /--kiosk/);
  assert.match(main, /setLoginItemSettings/);
  assert.match(main, /safeStorage\.encryptString/);
  const preload = readFileSync(`${out}/player-preload.cjs`, 'utf8');
  assert.match(preload, /exposeInMainWorld\("rentalShell"/);
  assert.doesNotMatch(preload, /exposeInMainWorld\([^)]*ipcRenderer\)/);
});

test('through Electron: the player shell shows its pairing code', { skip }, async () => {
  const { buildShell } = await import('../../app/electron/shell-launcher.ts');
  const server = await testServer();
  const main = await buildShell('player', tempDir('rd-shell-'));
  const app = await _electron.launch({
    executablePath: (bin as { path: string }).path,
    args: ['--no-sandbox', main, '--server', server.url],
  });
  try {
    const page = await app.firstWindow();
    await page.waitForFunction(() =>
      /^[A-Z2-9]{4}-[A-Z2-9]{4}$/.test(
        document.querySelector('[data-testid="pairing-code"]')?.textContent ?? '',
      ),
    );
    await screenshot(page, 'electron-player-pairing');
  } finally {
    await app.close();
  }
});
