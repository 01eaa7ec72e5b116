#!/usr/bin/env node
// Runs before `npm test`: make sure what the tests need is on this machine. Debian's Chromium drives
// the Playwright suites and ffmpeg checks media at ingest; as root we install what is missing,
// otherwise we say the one command to run.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const needs = [
  ['chromium', CHROMIUM],
  ['ffmpeg', '/usr/bin/ffmpeg'],
].filter(([, path]) => !existsSync(path));

if (needs.length) {
  const pkgs = needs.map(([pkg]) => pkg).join(' ');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    console.error(`pretest: missing ${pkgs}. Run:  sudo apt-get install -y ${pkgs}`);
    process.exit(1);
  }
  console.log(`pretest: installing Debian packages: ${pkgs}`);
  execSync(`apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkgs} >/dev/null`, {
    stdio: 'inherit',
    shell: '/bin/bash',
  });
}
console.log(`pretest: chromium at ${CHROMIUM}, ffmpeg present`);
