/**
 * The store app's (and later the player's) renderer, bundled with esbuild in memory on first use
 * and served by the server, so the same UI runs in any browser and inside the Electron shells.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface UiBundle {
  files: Map<string, { body: Uint8Array; type: string }>;
}

const APPS = {
  store: { entry: 'app/renderer/main.tsx', title: 'Rental Delivery — Store' },
  player: { entry: 'player/renderer/main.tsx', title: 'Rental Delivery — Player' },
} as const;
export type UiName = keyof typeof APPS;

const cache = new Map<UiName, Promise<UiBundle>>();

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

export function uiBundle(name: UiName): Promise<UiBundle> {
  let b = cache.get(name);
  if (!b) {
    b = bundle(name);
    cache.set(name, b);
    b.catch(() => cache.delete(name)); // let a later request retry after a build error
  }
  return b;
}

async function bundle(name: UiName): Promise<UiBundle> {
  const app = APPS[name];
  const result = await build({
    entryPoints: { app: join(root, app.entry) },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    jsx: 'automatic',
    minify: true,
    sourcemap: 'linked',
    outdir: '/out',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const files = new Map<string, { body: Uint8Array; type: string }>();
  for (const f of result.outputFiles) {
    const base = f.path.slice('/out/'.length);
    const ext = base.slice(base.lastIndexOf('.'));
    files.set(base, { body: f.contents, type: TYPES[ext] ?? 'application/octet-stream' });
  }
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws: wss:; img-src 'self' data:; media-src 'self' blob:; style-src 'self'">
<title>${app.title}</title>
<link rel="icon" href="data:,">
${files.has('app.css') ? '<link rel="stylesheet" href="app.css">' : ''}
</head>
<body>
<div id="root"></div>
<script type="module" src="app.js"></script>
</body>
</html>`;
  files.set('index.html', { body: new TextEncoder().encode(html), type: 'text/html; charset=utf-8' });
  return { files };
}
