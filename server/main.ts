/** `npm start`: run the server on its embedded defaults (SQLite and media in ./data, demo catalog). */

import { launchStoreShell } from '../app/electron/shell-launcher.ts';
import { LIMITS } from '../shared/limits.ts';
import { startServer } from './app.ts';
import { intArg, parseCli, runCli, UsageError, wsUrlArg } from './cli-args.ts';

export const SERVE_USAGE = `usage: npm start -- [options]
  --data DIR                 data folder (default ./data)
  --host HOST                address to listen on (default 127.0.0.1)
  --port N                   port (default 8080, or $PORT; 0 picks a free one)
  --role all|key|content     run both roles (default) or one of them
  --key-server URL           with --role content: a key server's ws://HOST:PORT/ws (repeatable:
                             one per key-server instance sharing a PostgreSQL database)
  --database-url URL         PostgreSQL (postgres://USER:PASSWORD@HOST:PORT/DB) shared with other
                             instances; default $DATABASE_URL, else SQLite in the data folder
  --content-url URL          with --role key: a content server terminals should use (repeatable)
  --min-rental-seconds N     shortest rental accepted (default ${LIMITS.defaultMinRentalSeconds})
  --connections-per-ip N     open connections allowed from one address (default ${LIMITS.connectionsPerIp})
  --orders-per-minute N      orders one customer may place per minute (default ${LIMITS.ordersPerMinute})
  --messages-per-second N    messages one connection may send per second (default ${LIMITS.messagesPerSecond})
  --delivery-rate KB         cap each delivery at KB kilobytes per second (default: no cap)
  --no-demo                  do not load the demo catalog (and its ad) into an empty store
  --no-open                  do not open the store app window (Electron) after starting`;

export async function serve(argv: string[]): Promise<number | undefined> {
  const { values } = parseCli(argv, {
    data: { type: 'string', default: './data' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: process.env.PORT ?? '8080' },
    role: { type: 'string', default: 'all' },
    'key-server': { type: 'string', multiple: true },
    'database-url': { type: 'string' },
    'content-url': { type: 'string', multiple: true },
    'min-rental-seconds': { type: 'string' },
    'delivery-rate': { type: 'string' },
    'connections-per-ip': { type: 'string' },
    'orders-per-minute': { type: 'string' },
    'messages-per-second': { type: 'string' },
    'no-demo': { type: 'boolean' },
    'no-open': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  const role = values.role as string;
  if (role !== 'all' && role !== 'key' && role !== 'content') {
    throw new UsageError(`--role must be all, key or content (got ${JSON.stringify(role)})`);
  }
  const keyServerUrls = ((values['key-server'] as string[] | undefined) ?? []).map(
    (u) => wsUrlArg(u, 'key-server') as string,
  );
  if (role === 'content' && keyServerUrls.length === 0)
    throw new UsageError('--role content needs --key-server');
  const databaseUrl = (values['database-url'] as string | undefined) ?? process.env.DATABASE_URL;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\/\S+$/.test(databaseUrl))
    throw new UsageError(
      '--database-url (or DATABASE_URL) must look like postgres://USER:PASSWORD@HOST:PORT/DB',
    );
  const contentUrls = ((values['content-url'] as string[] | undefined) ?? []).map(
    (u) => wsUrlArg(u, 'content-url') as string,
  );
  const server = await startServer({
    dataDir: values.data as string,
    host: values.host as string,
    port: intArg(values.port, 'port', 0, 65535),
    role,
    keyServerUrls,
    contentUrls,
    databaseUrl,
    minRentalSeconds: intArg(values['min-rental-seconds'], 'min-rental-seconds', 1, LIMITS.maxRentalSeconds),
    seedDemo: !values['no-demo'],
    seedDemoAd: !values['no-demo'],
    ordersPerMinute: intArg(values['orders-per-minute'], 'orders-per-minute', 1, 10_000_000),
    messagesPerSecond: intArg(values['messages-per-second'], 'messages-per-second', 1, 10_000_000),
    messageBurst: intArg(values['messages-per-second'], 'messages-per-second', 1, 10_000_000),
    connectionsPerIp: intArg(values['connections-per-ip'], 'connections-per-ip', 1, 1_000_000),
    deliveryBytesPerSecond: (intArg(values['delivery-rate'], 'delivery-rate', 1, 10_000_000) ?? 0) * 1024,
  });
  process.stdout.write(
    `Rental Delivery (${role}) serving on ${server.url}  (WebSocket ${server.wsUrl}, data ${values.data})\n`,
  );
  if (role !== 'content') {
    process.stdout.write(
      `Store:    ${server.url}store/\n` +
        `Player:   ${server.url}player/   (or: npm run player; headless: npm run terminal -- run --server ${server.wsUrl})\n`,
    );
    if (!values['no-open']) {
      const shell = await launchStoreShell(server.url);
      if ('missing' in shell) {
        process.stdout.write(
          `(Store app window not opened: ${shell.missing}. Open the Store address in a browser.)\n`,
        );
      } else {
        process.stdout.write('Opened the store app window.\n');
        shell.on('exit', () => process.stdout.write('Store app window closed; the server keeps running.\n'));
      }
    }
  }
  const stop = () => {
    process.stdout.write('shutting down\n');
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) runCli(() => serve(process.argv.slice(2)), SERVE_USAGE);
