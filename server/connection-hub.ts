/**
 * One WebSocket endpoint for customers, terminals and the content-server peer. The hub owns the
 * boundary: size limits, JSON parsing, schema validation, rate limits, role checks and typed error
 * replies. Roles register handlers for message types; a handler's return value is the result, a
 * thrown RentalError becomes a typed error, anything else an INTERNAL error (logged, not leaked).
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import {
  concatBytes,
  fromB64,
  randomBytes,
  signJson,
  terminalIdFromPublicKey,
  toB64,
  verifyDetached,
} from '../shared/crypto.ts';
import { RentalError } from '../shared/errors.ts';
import { LIMITS } from '../shared/limits.ts';
import {
  type ClientMessage,
  ClientMessage as ClientMessageSchema,
  type ClientMessageType,
  CUSTOMER_TYPES,
  describeIssues,
  PEER_TYPES,
  PROTOCOL_VERSION,
  type ServerMessage,
  TERMINAL_TYPES,
} from '../shared/protocol.ts';
import { corkerFor } from '../shared/socket-cork.ts';
import { log } from './log.ts';
import type { ServerIdentity } from './server-identity.ts';

export type Role = 'all' | 'key' | 'content';

export interface Conn {
  readonly id: number;
  readonly ws: WebSocket;
  readonly ip: string;
  readonly nonce: Uint8Array;
  kind: 'none' | 'customer' | 'terminal' | 'peer';
  customerId?: string;
  tokenHash?: string;
  terminalId?: string;
  terminalKey?: Uint8Array;
  /** The terminal takes a new delivery's chunks right behind its offer (DeliveryOffer.pushed). */
  pushedOffers?: boolean;
  send(msg: ServerMessage): void;
  /**
   * Writes whole binary messages, already framed (`shared/websocket-frame.ts`), straight to the
   * socket: a delivery's block of chunks in one write, without ws's work per message. Resolves once
   * the bytes are handed to the OS.
   */
  sendFramed(messages: Uint8Array): Promise<void>;
  readonly open: boolean;
}

type Handler<T extends ClientMessageType> = (
  conn: Conn,
  msg: Extract<ClientMessage, { type: T }>,
) => Promise<unknown>;

// Browsing the catalog needs no account, like any shop window.
const PUBLIC_TYPES = new Set([
  'catalog.list',
  'auth.register',
  'auth.login',
  'auth.resume',
  'terminal.auth',
  'peer.auth',
  'ping',
]);

export interface HubEvents {
  'terminal-online': [Conn];
  'terminal-offline': [Conn];
  'conn-closed': [Conn];
}

export class ConnectionHub extends EventEmitter<HubEvents> {
  private readonly wss: WebSocketServer;
  private readonly handlers = new Map<string, Handler<ClientMessageType>>();
  private readonly terminals = new Map<string, Conn>();
  private readonly perIp = new Map<string, number>();
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly heartbeat: NodeJS.Timeout;
  private nextId = 1;

  constructor(
    http: Server,
    private readonly identity: ServerIdentity,
    readonly role: Role,
    private readonly limits: { connectionsPerIp: number; messagesPerSecond: number; messageBurst: number } = {
      connectionsPerIp: LIMITS.connectionsPerIp,
      messagesPerSecond: LIMITS.messagesPerSecond,
      messageBurst: LIMITS.messageBurst,
    },
  ) {
    super();
    this.setMaxListeners(50);
    this.wss = new WebSocketServer({
      server: http,
      path: '/ws',
      maxPayload: LIMITS.maxClientMessageBytes,
      // Stated, not left to ws's default: Conn.sendFramed relies on messages never being queued.
      perMessageDeflate: false,
    });
    this.wss.on('connection', (ws, req) => this.accept(ws, req));
    // Heartbeat: a connection that did not answer the last ping (a vanished TV box, a dead NAT
    // mapping) is closed, so its terminal shows offline and its deliveries wait for it.
    this.heartbeat = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (this.alive.get(ws) === false) {
          ws.terminate();
          continue;
        }
        this.alive.set(ws, false);
        ws.ping();
      }
    }, LIMITS.heartbeatMs);
    this.heartbeat.unref();
  }

  handle<T extends ClientMessageType>(type: T, handler: Handler<T>): void {
    this.handlers.set(type, handler as unknown as Handler<ClientMessageType>);
  }

  /** The terminal's live connection, if it has one on this hub. */
  terminal(terminalId: string): Conn | undefined {
    return this.terminals.get(terminalId);
  }

  /** Open connections and authenticated terminals, for /health and load measurements. */
  counts(): { connections: number; terminals: number } {
    return { connections: this.wss.clients.size, terminals: this.terminals.size };
  }

  isOnline(terminalId: string): boolean {
    return this.terminals.has(terminalId);
  }

  /** Every customer connection of one account (a person may have the store open twice). */
  customerConns(customerId: string): Conn[] {
    return [...(this.customers.get(customerId) ?? [])];
  }
  /** Customer connections by account, so a push does not walk every connected terminal. */
  private readonly customers = new Map<string, Set<Conn>>();

  /** Sign a connection in as a customer, or out (`undefined`). */
  bindCustomer(conn: Conn, customer: { customerId: string; tokenHash: string } | undefined): void {
    if (conn.customerId) {
      const set = this.customers.get(conn.customerId);
      set?.delete(conn);
      if (set?.size === 0) this.customers.delete(conn.customerId);
    }
    conn.kind = customer ? 'customer' : 'none';
    conn.customerId = customer?.customerId;
    conn.tokenHash = customer?.tokenHash;
    if (customer) {
      const set = this.customers.get(customer.customerId) ?? new Set<Conn>();
      set.add(conn);
      this.customers.set(customer.customerId, set);
    }
  }

  *peerConns(): Iterable<Conn> {
    for (const ws of this.wss.clients) {
      const c = (ws as WebSocket & { conn?: Conn }).conn;
      if (c?.kind === 'peer') yield c;
    }
  }

  signedTime(nonce: Uint8Array) {
    return signJson('time', { t: Date.now(), nonce: toB64(nonce) }, this.identity.signSecretKey);
  }

  /** Check a terminal's answer to this connection's challenge and mark the connection as that terminal. */
  authenticateTerminal(
    conn: Conn,
    signPublicKeyB64: string,
    signatureB64: string,
    pushedOffers = false,
  ): string {
    if (conn.terminalId) throw new RentalError('WRONG_ROLE', 'this connection is already authenticated');
    let pk: Uint8Array;
    let sig: Uint8Array;
    try {
      pk = fromB64(signPublicKeyB64);
      sig = fromB64(signatureB64);
    } catch {
      throw new RentalError('BAD_SIGNATURE', 'terminal key or signature is not valid base64url');
    }
    if (pk.length !== 32 || !verifyDetached('terminal-auth', concatBytes(conn.nonce, pk), sig, pk)) {
      throw new RentalError('BAD_SIGNATURE', 'terminal failed its challenge');
    }
    const terminalId = terminalIdFromPublicKey(pk);
    conn.kind = 'terminal';
    conn.terminalId = terminalId;
    conn.terminalKey = pk;
    conn.pushedOffers = pushedOffers;
    const previous = this.terminals.get(terminalId);
    this.terminals.set(terminalId, conn);
    // One live connection per terminal: a reconnect replaces a half-dead socket.
    if (previous && previous !== conn) previous.ws.close(4000, 'replaced by a newer connection');
    return terminalId;
  }

  /** Emit after the auth reply is sent, so the terminal knows its id before offers arrive. */
  announceTerminal(conn: Conn): void {
    if (conn.terminalId && this.terminals.get(conn.terminalId) === conn) this.emit('terminal-online', conn);
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const count = (this.perIp.get(ip) ?? 0) + 1;
    if (count > this.limits.connectionsPerIp) {
      ws.close(1013, 'too many connections from this address');
      return;
    }
    this.perIp.set(ip, count);
    const nonce = randomBytes(24);
    // Messages to one socket in one turn (a reply, an order update, a block of chunks) leave in
    // one write instead of a system call each.
    const corkForTurn = corkerFor(req.socket);
    let tokens: number = this.limits.messageBurst;
    let refilledAt = Date.now();
    const conn: Conn = {
      id: this.nextId++,
      ws,
      ip,
      nonce,
      kind: 'none',
      send: (msg) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        corkForTurn();
        ws.send(JSON.stringify(msg));
      },
      // In order with ws.send's messages: without compression (off, see the server's options),
      // ws writes each message to the socket at once, never queueing one behind another.
      sendFramed: (messages) =>
        new Promise((resolve, reject) => {
          if (ws.readyState !== WebSocket.OPEN) return reject(new Error('connection closed'));
          req.socket.write(messages, (err) => (err ? reject(err) : resolve()));
        }),
      get open() {
        return ws.readyState === WebSocket.OPEN;
      },
    };
    (ws as WebSocket & { conn?: Conn }).conn = conn;
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      this.perIp.set(ip, (this.perIp.get(ip) ?? 1) - 1);
      if (this.perIp.get(ip) === 0) this.perIp.delete(ip);
      if (conn.customerId) this.bindCustomer(conn, undefined);
      if (conn.terminalId && this.terminals.get(conn.terminalId) === conn) {
        this.terminals.delete(conn.terminalId);
        this.emit('terminal-offline', conn);
      }
      this.emit('conn-closed', conn);
    });
    ws.on('message', (data, isBinary) => {
      const now = Date.now();
      tokens = Math.min(
        this.limits.messageBurst,
        tokens + ((now - refilledAt) / 1000) * this.limits.messagesPerSecond,
      );
      refilledAt = now;
      if (tokens < 1) {
        this.sendError(conn, null, new RentalError('RATE_LIMITED', 'too many messages; slow down'));
        return;
      }
      tokens -= 1;
      void this.receive(conn, data, isBinary);
    });
    conn.send({
      type: 'server.hello',
      v: PROTOCOL_VERSION,
      role: this.role,
      serverPublicKey: toB64(this.identity.signPublicKey),
      nonce: toB64(nonce),
      time: this.signedTime(nonce),
    });
  }

  private async receive(conn: Conn, data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) {
      return this.sendError(
        conn,
        null,
        new RentalError('BAD_JSON', 'binary frames are not accepted from clients'),
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(data.toString());
    } catch {
      return this.sendError(conn, null, new RentalError('BAD_JSON', 'message is not valid JSON'));
    }
    const re = requestIdOf(raw);
    const parsed = ClientMessageSchema.safeParse(raw);
    if (!parsed.success) {
      const type = (raw as { type?: unknown } | null)?.type;
      const known = typeof type === 'string' && this.knows(type);
      const err = known
        ? new RentalError('BAD_MESSAGE', `invalid ${type} message`, describeIssues(parsed.error))
        : new RentalError('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(type)?.slice(0, 60)}`);
      return this.sendError(conn, re, err);
    }
    const msg = parsed.data;
    const handler = this.handlers.get(msg.type);
    try {
      if (!handler)
        throw new RentalError('UNKNOWN_TYPE', `this server (role ${this.role}) does not handle ${msg.type}`);
      this.checkRole(conn, msg.type);
      const value = await handler(conn, msg);
      if (msg.id !== undefined) conn.send({ type: 'result', re: msg.id, value: value ?? {} });
      if (msg.type === 'terminal.auth' || msg.type === 'terminal.pairing.refresh')
        this.announceTerminal(conn);
    } catch (err) {
      this.sendError(conn, msg.id ?? null, err);
    }
  }

  private knows(type: string): boolean {
    return CUSTOMER_TYPES.has(type) || TERMINAL_TYPES.has(type) || PEER_TYPES.has(type);
  }

  private checkRole(conn: Conn, type: string): void {
    const want = CUSTOMER_TYPES.has(type) ? 'customer' : TERMINAL_TYPES.has(type) ? 'terminal' : 'peer';
    if (type === 'ping' || type === 'catalog.list') return;
    if (conn.kind !== 'none' && conn.kind !== want) {
      throw new RentalError('WRONG_ROLE', `a ${conn.kind} connection cannot send ${type}`);
    }
    if (conn.kind === 'none' && !PUBLIC_TYPES.has(type)) {
      throw new RentalError('NOT_AUTHENTICATED', `sign in before sending ${type}`);
    }
  }

  sendError(conn: Conn, re: number | null, err: unknown): void {
    if (err instanceof RentalError) {
      conn.send({
        type: 'error',
        re,
        code: err.code,
        message: err.message,
        ...(err.issues ? { issues: err.issues } : {}),
      });
      return;
    }
    const sysCode = (err as { code?: unknown } | null)?.code;
    if (sysCode === 'SQLITE_FULL' || sysCode === 'ENOSPC') {
      log('error', 'storage-full', { error: String(err) });
      conn.send({
        type: 'error',
        re,
        code: 'STORAGE_FULL',
        message: 'the server is out of disk space; nothing was stored, please try again later',
      });
      return;
    }
    const ref = toB64(randomBytes(6));
    log('error', 'handler-failed', { ref, error: err instanceof Error ? err.stack : String(err) });
    conn.send({ type: 'error', re, code: 'INTERNAL', message: `internal error (ref ${ref})` });
  }
}

function requestIdOf(raw: unknown): number | null {
  const id = (raw as { id?: unknown } | null)?.id;
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : null;
}
