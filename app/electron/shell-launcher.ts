/**
 * Node-side helpers for the Electron shells: find the Electron binary (absent when npm could not
 * download it), bundle main and preload to CommonJS with esbuild, and launch a shell on a server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The Electron executable, or why there is none. */
export function electronBinary(): { path: string } | { missing: string } {
  try {
    const path = createRequire(import.meta.url)('electron') as unknown;
    if (typeof path === 'string' && existsSync(path)) return { path };
    return { missing: 'the electron package is installed without its binary' };
  } catch {
    return {
      missing: 'the Electron binary is not installed (its download is not reachable from this machine)',
    };
  }
}

export type ShellApp = 'store' | 'player';

const ENTRIES: Record<ShellApp, Record<string, string>> = {
  store: { 'store-main': 'app/electron/main.ts', preload: 'app/electron/preload.ts' },
  player: { 'player-main': 'player/electron/main.ts', 'player-preload': 'player/electron/preload.ts' },
};

/** Bundle the store shell's main and preload to `dist/electron/`. Returns the main script. */
export function buildStoreShell(outDir = join(root, 'dist/electron')): Promise<string> {
  return buildShell('store', outDir);
}

/** Bundle one shell's main and preload to CommonJS in `outDir`. Returns the main script. */
export async function buildShell(shell: ShellApp, outDir = join(root, 'dist/electron')): Promise<string> {
  const entries = Object.fromEntries(Object.entries(ENTRIES[shell]).map(([k, v]) => [k, join(root, v)]));
  await build({
    entryPoints: entries,
    outdir: outDir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['electron'],
    logLevel: 'silent',
  });
  return join(outDir, `${shell}-main.cjs`);
}

export function launchStoreShell(serverUrl: string): Promise<ChildProcess | { missing: string }> {
  return launchShell('store', serverUrl);
}

export async function launchShell(
  shell: ShellApp,
  serverUrl: string,
  extraArgs: string[] = [],
): Promise<ChildProcess | { missing: string }> {
  const bin = electronBinary();
  if ('missing' in bin) return bin;
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    return { missing: 'there is no display (DISPLAY is not set)' };
  }
  const main = await buildShell(shell);
  return spawn(bin.path, [main, '--server', serverUrl, ...extraArgs], { stdio: 'ignore', detached: false });
}
