/**
 * `npm run player -- [--server URL] [--kiosk] [--fullscreen] [--autostart]`: open the player app in
 * its Electron shell, or, where Electron is not installed, say so and print the browser address.
 */
import { launchShell } from '../app/electron/shell-launcher.ts';
import { parseCli, runCli, UsageError } from '../server/cli-args.ts';

const USAGE =
  'usage: npm run player -- [--server http://HOST:PORT/] [--kiosk] [--fullscreen] [--autostart]\n' +
  '  --kiosk       full screen with no window chrome, for set-top installs\n' +
  '  --autostart   start the player when the user logs in';

runCli(async () => {
  const { values } = parseCli(process.argv.slice(2), {
    server: { type: 'string', default: 'http://127.0.0.1:8080/' },
    kiosk: { type: 'boolean' },
    fullscreen: { type: 'boolean' },
    autostart: { type: 'boolean' },
  });
  let server: URL;
  try {
    server = new URL(values.server as string);
    if (server.protocol !== 'http:' && server.protocol !== 'https:') throw new Error();
  } catch {
    throw new UsageError('--server must be an http:// or https:// address');
  }
  const extra = (['kiosk', 'fullscreen', 'autostart'] as const).filter((k) => values[k]).map((k) => `--${k}`);
  const shell = await launchShell('player', server.toString(), extra);
  if ('missing' in shell) {
    process.stdout.write(
      `Player window not opened: ${shell.missing}.\nOpen ${new URL('/player/', server)} in a browser.\n`,
    );
    return 0;
  }
  await new Promise((r) => shell.on('exit', r));
  return 0;
}, USAGE);
