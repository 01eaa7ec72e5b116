/** `npm run build:electron`: bundle the Electron shells' main and preload scripts into dist/electron. */
import { buildShell } from '../app/electron/shell-launcher.ts';

for (const shell of ['store', 'player'] as const) process.stdout.write(`built ${await buildShell(shell)}\n`);
