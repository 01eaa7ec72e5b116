import { mkdtempSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startServer } from './server/app.ts';

const srv = await startServer({ dataDir: mkdtempSync('/tmp/rdshot-'), port: 0 });
const b = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const p = await b.newPage();
p.on('console', (m) => console.log('console:', m.type(), m.text()));
p.on('pageerror', (e) => console.log('pageerror:', e.message));
await p.goto(srv.url + 'player/');
await p.waitForTimeout(3000);
console.log(await p.locator('body').innerText());
await p.screenshot({ path: '/tmp/p1.png' });
await b.close();
await srv.close();
