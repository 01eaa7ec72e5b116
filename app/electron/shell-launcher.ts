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

/** Bundle the store shell's main and preload to `dist/electron/`. Returns the main script. */
export async function buildStoreShell(outDir = join(root, 'dist/electron')): Promise<string> {
  await build({
    entryPoints: {
      'store-main': join(root, 'app/electron/main.ts'),
      preload: join(root, 'app/electron/preload.ts'),
    },
    outdir: outDir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['electron'],
    logLevel: 'silent',
  });
  return join(outDir, 'store-main.cjs');
}

export async function launchStoreShell(serverUrl: string): Promise<ChildProcess | { missing: string }> {
  const bin = electronBinary();
  if ('missing' in bin) return bin;
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    return { missing: 'there is no display (DISPLAY is not set)' };
  }
  const main = await buildStoreShell();
  return spawn(bin.path, [main, '--server', serverUrl], { stdio: 'ignore', detached: false });
}
