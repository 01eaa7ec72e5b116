/**
 * The authenticated link between a key server and content servers running as separate processes.
 * The content server dials the key server, proves it holds the shared peer key (a MAC over the
 * connection's nonce), then receives delivery instructions and reports progress back. The content
 * key travels secretboxed under the peer key.
 */
import { WebSocket } from 'ws';
import { fromB64, macOf, macValid, toB64 } from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { ServerMessage } from '../../shared/protocol.ts';
import type { Conn, ConnectionHub } from '../connection-hub.ts';
import { log } from '../log.ts';
import { nativeSecretboxOpen, nativeSecretboxSeal } from '../native-sodium.ts';
import type { ContentDelivery, ContentDispatcher, DeliveryInstruction, DeliveryStatus } from './delivery.ts';

/** Key-server side: dispatches instructions to whichever content servers are connected. */
export class RemoteContent implements ContentDispatcher {
  private readonly active = new Map<string, DeliveryInstruction>();
  private readonly assigned = new Map<string, Conn>();

  constructor(
    private readonly hub: ConnectionHub,
    private readonly peerKey: Uint8Array,
    onStatus: (s: DeliveryStatus) => void,
  ) {
    hub.handle('peer.auth', async (conn, m) => {
      let mac: Uint8Array;
      try {
        mac = fromB64(m.mac);
      } catch {
        throw new RentalError('BAD_SIGNATURE', 'peer MAC is not base64url');
      }
      if (!macValid(mac, conn.nonce, peerKey))
        throw new RentalError('BAD_SIGNATURE', 'peer failed its challenge');
      conn.kind = 'peer';
      log('info', 'content-peer-connected', { conn: conn.id });
      setImmediate(() => {
        for (const instr of this.active.values())
          if (!this.assigned.get(instr.orderId)?.open) this.send(instr);
      });
      return {};
    });
    hub.handle('delivery.status', async (conn, m) => {
      // Another key instance may have sent it (shared database) and died: its report is still news.
      const assigned = this.assigned.get(m.orderId);
      if (assigned && assigned !== conn)
        throw new RentalError('NOT_FOUND', 'that order is assigned to another content server');
      if (m.state === 'delivered') {
        this.active.delete(m.orderId);
        this.assigned.delete(m.orderId);
      }
      onStatus(m);
      return {};
    });
    hub.on('conn-closed', (conn) => {
      if (conn.kind !== 'peer') return;
      // A content server died: hand its deliveries to another one; the terminal resumes from its chunk.
      for (const [orderId, c] of this.assigned) {
        if (c !== conn) continue;
        this.assigned.delete(orderId);
        const instr = this.active.get(orderId);
        if (instr) this.send(instr);
      }
    });
  }

  instruct(instr: DeliveryInstruction): void {
    // Sent again to another content server if this one is lost: by then the terminal may hold
    // chunks, so that one asks where to start.
    this.active.set(instr.orderId, { ...instr, fresh: false });
    this.send(instr);
  }

  cancel(orderId: string): void {
    this.active.delete(orderId);
    this.assigned.get(orderId)?.send({ type: 'delivery.cancel', orderId });
    this.assigned.delete(orderId);
  }

  private send(instr: DeliveryInstruction) {
    const peers = [...this.hub.peerConns()];
    if (peers.length === 0) return; // sent when a content server connects
    // Spread orders over content servers by order id, so a resend goes to the same one. By its last
    // digits, which are random: the first ones are the time it was made (UUID v7, key/order-id.ts).
    const peer = peers[Number.parseInt(instr.orderId.slice(-8), 16) % peers.length] as Conn;
    this.assigned.set(instr.orderId, peer);
    peer.send({
      type: 'delivery.instruct',
      orderId: instr.orderId,
      itemNumber: instr.itemNumber,
      terminalId: instr.terminalId,
      sealedKey: toB64(nativeSecretboxSeal(instr.contentKey, this.peerKey)),
      notBefore: instr.notBefore,
      notAfter: instr.notAfter,
      ...(instr.fresh ? { fresh: true } : {}),
      ...(instr.preroll
        ? {
            preroll: {
              envelope: instr.preroll.envelope,
              creative: Buffer.from(instr.preroll.creative).toString('base64url'),
            },
          }
        : {}),
    });
  }
}

/** Content-server side: keeps a link to the key server open and feeds instructions to local delivery. */
export class PeerClient {
  private ws: WebSocket | undefined;
  private closed = false;
  private backoff = 250;
  private nextId = 1;

  constructor(
    private readonly url: string,
    private readonly peerKey: Uint8Array,
    private readonly delivery: () => ContentDelivery,
    /** An instruction for this order came over this link (its reports go back the same way). */
    private readonly onInstructed: (orderId: string) => void = () => {},
  ) {}

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const parsed = ServerMessage.safeParse(safeJson(data.toString()));
      if (!parsed.success) return log('warn', 'peer-bad-message', {});
      const m = parsed.data;
      if (m.type === 'server.hello') {
        const mac = toB64(macOf(fromB64(m.nonce), this.peerKey));
        ws.send(JSON.stringify({ type: 'peer.auth', id: this.nextId++, mac }));
      } else if (m.type === 'result') {
        this.backoff = 250;
      } else if (m.type === 'error') {
        log('warn', 'peer-error', { code: m.code, message: m.message });
      } else if (m.type === 'delivery.instruct') {
        const contentKey = nativeSecretboxOpen(fromB64(m.sealedKey), this.peerKey);
        this.onInstructed(m.orderId);
        const { preroll, sealedKey: _, type: __, ...rest } = m;
        this.delivery().instruct({
          ...rest,
          contentKey,
          ...(preroll
            ? { preroll: { envelope: preroll.envelope, creative: fromB64(preroll.creative) } }
            : {}),
        });
      } else if (m.type === 'delivery.cancel') {
        this.delivery().cancel(m.orderId);
      }
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      if (this.closed) return;
      setTimeout(() => this.start(), this.backoff).unref();
      this.backoff = Math.min(this.backoff * 2, 10_000);
    });
  }

  report(s: DeliveryStatus): void {
    if (this.ws?.readyState === WebSocket.OPEN)
      this.ws.send(JSON.stringify({ type: 'delivery.status', ...s }));
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}

/**
 * Content-server side with several key-server instances (on a shared PostgreSQL database any of
 * them may instruct): one link to each, and each order's progress goes back to the instance that
 * sent it, or to any connected one if that instance is gone (they share the order records).
 */
export class KeyServerLinks {
  private readonly links: PeerClient[];
  private readonly origin = new Map<string, PeerClient>();

  constructor(urls: string[], peerKey: Uint8Array, delivery: () => ContentDelivery) {
    this.links = urls.map((url) => {
      const link: PeerClient = new PeerClient(url, peerKey, delivery, (orderId) =>
        this.origin.set(orderId, link),
      );
      return link;
    });
  }

  start(): void {
    for (const l of this.links) l.start();
  }

  report(s: DeliveryStatus): void {
    const from = this.origin.get(s.orderId);
    const link = from?.connected ? from : this.links.find((l) => l.connected);
    link?.report(s);
    if (s.state === 'delivered') this.origin.delete(s.orderId);
  }

  close(): void {
    for (const l of this.links) l.close();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
