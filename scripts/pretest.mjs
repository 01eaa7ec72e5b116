#!/usr/bin/env node
// Runs before `npm test`: make sure what the tests need is on this machine. Debian's Chromium is
// needed by the Playwright suites; as root we install it, otherwise we say the one command to run.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

if (!existsSync(CHROMIUM)) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    console.log('pretest: installing Debian chromium for the browser tests');
    execSync(
      'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null',
      {
        stdio: 'inherit',
        shell: '/bin/bash',
      },
    );
  } else {
    console.error('pretest: Chromium is missing. Run:  sudo apt-get install -y chromium');
    process.exit(1);
  }
}
console.log(`pretest: chromium at ${CHROMIUM}`);
