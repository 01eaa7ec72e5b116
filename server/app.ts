/**
 * Builds a running server from options: HTTP + WebSocket on one port, the key role, the content
 * role, or both in one process (the default, where instructions are plain calls).
 */
import { createReadStream, mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve } from 'node:path';
import { cryptoReady } from '../shared/crypto.ts';
import { LIMITS } from '../shared/limits.ts';
import { BackgroundWork } from './background-work.ts';
import { type Conn, ConnectionHub, type Role } from './connection-hub.ts';
import { ContentDelivery, type ContentDispatcher, type DeliveryStatus } from './content/delivery.ts';
import { catalogView, MediaStore } from './content/media-store.ts';
import { KeyServerLinks, RemoteContent } from './content/peer-link.ts';
import { InstanceBeat } from './instance-beat.ts';
import { Accounts } from './key/accounts.ts';
import { AdPusher, seedDemoAd } from './key/ads.ts';
import { serveAnalytics } from './key/analytics.ts';
import { DeliveryQueue } from './key/delivery-queue.ts';
import { Orders } from './key/orders.ts';
import { Terminals } from './key/terminals.ts';
import { log } from './log.ts';
import { loadServerIdentity } from './server-identity.ts';
import { openStore } from './store/open-store.ts';
import type { Repository } from './store/repository.ts';
import { type UiName, uiBundle } from './ui-bundles.ts';

export interface ServerOptions {
  dataDir: string;
  host?: string;
  port?: number;
  role?: Role;
  /** Shortest rental accepted, in seconds (tests and demos use short ones). */
  minRentalSeconds?: number;
  /** Load the demo catalog when the catalog is empty. */
  seedDemo?: boolean;
  /** Add a demo ad (shown on idle screens and as a pre-roll) when there has never been an ad. */
  seedDemoAd?: boolean;
  /** Content role alone: the key servers to take instructions from (every key instance). */
  keyServerUrls?: string[];
  /** Key role alone: the content servers' WebSocket URLs, told to terminals. */
  contentUrls?: string[];
  connectionsPerIp?: number;
  /** Orders one customer may place per minute (benchmarks raise it). */
  ordersPerMinute?: number;
  /** Per-connection message rate and burst (load tests raise them). */
  messagesPerSecond?: number;
  messageBurst?: number;
  /** Cap on each delivery's rate in bytes per second (0: as fast as the terminal takes it). */
  deliveryBytesPerSecond?: number;
  /** How long a pairing code stays valid (tests shorten it). */
  pairingCodeTtlMs?: number;
  /** postgres://… to share a PostgreSQL database with other instances; SQLite in the data folder if unset. */
  databaseUrl?: string;
}

export interface RunningServer {
  /** The resolved data folder (database, media, keys). */
  dataDir: string;
  /** The PostgreSQL database it uses, if not SQLite. */
  databaseUrl?: string;
  url: string;
  wsUrl: string;
  port: number;
  role: Role;
  hub: ConnectionHub;
  repo: Repository;
  media: MediaStore;
  close(): Promise<void>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  await cryptoReady();
  const role = opts.role ?? 'all';
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const identity = loadServerIdentity(dataDir);
  const { repo, cluster } = await openStore(dataDir, opts.databaseUrl);
  const beats = new InstanceBeat(repo, cluster.instanceId, role);
  await beats.start();
  const media = new MediaStore(dataDir, repo);
  let demoLoaded = false;
  if (opts.seedDemo ?? true) {
    const n = await media.seedDemoCatalog();
    if (n) log('info', 'demo-catalog-loaded', { titles: n });
    demoLoaded = n > 0;
  }

  const hubRef: { hub?: ConnectionHub } = {};
  const http = createServer((req, res) => void serveHttp(req, res, role, media, repo, hubRef));
  const hub = new ConnectionHub(http, identity, role, {
    connectionsPerIp: opts.connectionsPerIp ?? LIMITS.connectionsPerIp,
    messagesPerSecond: opts.messagesPerSecond ?? LIMITS.messagesPerSecond,
    messageBurst: opts.messageBurst ?? LIMITS.messageBurst,
  });
  hubRef.hub = hub;
  hub.handle('ping', async () => ({ time: Date.now() }));
  hub.handle('catalog.list', async () => ({ items: (await repo.catalog()).map(catalogView) }));

  let queue: DeliveryQueue | undefined;
  let peer: KeyServerLinks | undefined;
  let local: ContentDelivery | undefined;
  let terminals: Terminals | undefined;
  /** Content status records under way: a stopping server lets them land before it closes its store. */
  const statusWrites = new BackgroundWork();
  const onStatus = (s: DeliveryStatus) => {
    if (queue)
      statusWrites.add(queue.onContentStatus(s), (err) =>
        log('warn', 'content-status-failed', { error: String(err) }),
      );
    else peer?.report(s);
  };
  if (role !== 'key') local = new ContentDelivery(hub, repo, media, onStatus, opts.deliveryBytesPerSecond);

  if (role === 'content') {
    if (!opts.keyServerUrls?.length) throw new Error('--role content needs --key-server ws://HOST:PORT/ws');
    hub.handle('terminal.auth', async (conn: Conn, m) => {
      const terminalId = hub.authenticateTerminal(conn, m.signPublicKey, m.signature, m.pushedOffers);
      return { terminalId, linked: false, pairingCode: null, pairingExpiresAt: null, contentUrls: [] };
    });
    peer = new KeyServerLinks(opts.keyServerUrls, identity.peerKey, () => local as ContentDelivery);
  } else {
    terminals = new Terminals(hub, repo, cluster, () => opts.contentUrls ?? [], opts.pairingCodeTtlMs);
    new Accounts(hub, repo);
    const dispatcher: ContentDispatcher =
      role === 'all' ? (local as ContentDelivery) : new RemoteContent(hub, identity.peerKey, onStatus);
    const orders = new Orders(
      hub,
      repo,
      cluster,
      terminals,
      identity.storageKey,
      opts.minRentalSeconds ?? LIMITS.defaultMinRentalSeconds,
      opts.ordersPerMinute ?? LIMITS.ordersPerMinute,
    );
    // With the demo catalog only: an operator's own catalog never gets the demo's ad.
    if (opts.seedDemoAd && demoLoaded && (await seedDemoAd(repo, dataDir))) log('info', 'demo-ad-loaded', {});
    const ads = new AdPusher(hub, repo, dataDir, identity.signSecretKey);
    serveAnalytics(hub, repo);
    queue = new DeliveryQueue(
      hub,
      repo,
      cluster,
      identity,
      orders,
      dispatcher,
      (terminalId) => void ads.pushTo(terminalId),
      (o) => ads.prerollFor(o),
    );
    beats.onRecovered = () => cluster.publish('jobs', '');
  }

  await new Promise<void>((ok, fail) => {
    http.once('error', fail);
    http.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => ok());
  });
  const port = (http.address() as AddressInfo).port;
  const host = opts.host && opts.host !== '0.0.0.0' && opts.host !== '::' ? opts.host : '127.0.0.1';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  queue?.start();
  peer?.start();

  return {
    dataDir,
    ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
    url: `http://${hostPart}:${port}/`,
    wsUrl: `ws://${hostPart}:${port}/ws`,
    port,
    role,
    hub,
    repo,
    media,
    async close() {
      await queue?.close();
      peer?.close();
      beats.stop();
      await hub.close();
      http.closeAllConnections();
      await new Promise<void>((ok) => http.close(() => ok()));
      // The connections' last records (terminals gone offline, deliveries' last reports) land
      // before the store closes: on PostgreSQL they were cut off ("pool after calling end").
      await new Promise((ok) => setImmediate(ok));
      await terminals?.presenceSettled();
      await statusWrites.settled();
      await cluster.close();
      await media.titles.close();
      await repo.close();
    },
  };
}

const POSTER_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
};

async function serveHttp(
  req: IncomingMessage,
  res: ServerResponse,
  role: Role,
  media: MediaStore,
  repo: Repository,
  hubRef: { hub?: ConnectionHub },
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://local');
  try {
    if (url.pathname === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ ok: true, role, ...hubRef.hub?.counts() }));
    }
    const ad = /^\/ads\/([0-9a-f-]{36})$/.exec(url.pathname);
    if (ad) {
      const row = (await repo.ads(true)).find((a) => a.adId === ad[1]);
      if (!row) return notFound(res);
      res.writeHead(200, { 'content-type': row.mimeType, 'cache-control': 'public, max-age=3600' });
      return void createReadStream(join(media.dir, 'ads', row.creativeFile)).pipe(res);
    }
    const poster = /^\/posters\/(\d{1,9})$/.exec(url.pathname);
    if (poster) {
      const item = await repo.catalogItem(Number(poster[1]));
      if (!item?.posterFile) return notFound(res);
      res.writeHead(200, {
        'content-type': POSTER_TYPES[extname(item.posterFile)] ?? 'application/octet-stream',
        'cache-control': 'public, max-age=3600',
      });
      return void createReadStream(media.path(item.posterFile)).pipe(res);
    }
    if (url.pathname === '/') {
      res.writeHead(302, { location: role === 'content' ? '/health' : '/store/' });
      return void res.end();
    }
    const ui = /^\/(store|player)\/([a-z0-9.]*)$/.exec(url.pathname);
    if (ui && role !== 'content') {
      const bundle = await uiBundle(ui[1] as UiName);
      const file = bundle.files.get(ui[2] || 'index.html');
      if (!file) return notFound(res);
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
      return void res.end(file.body);
    }
    if (url.pathname === '/store' || url.pathname === '/player') {
      res.writeHead(301, { location: `${url.pathname}/` });
      return void res.end();
    }
    notFound(res);
  } catch (err) {
    log('error', 'http-failed', { path: url.pathname, error: String(err) });
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }
}

function notFound(res: ServerResponse) {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found');
}
