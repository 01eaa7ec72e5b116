/** `npm run build:electron`: bundle the Electron shells' main and preload scripts into dist/electron. */
import { buildStoreShell } from '../app/electron/shell-launcher.ts';

const main = await buildStoreShell();
process.stdout.write(`built ${main}\n`);
