/**
 * The wire protocol: every message in both directions, defined once. Server, store app, player,
 * headless terminal and the content-server peer link all import these schemas and types.
 * JSON text frames carry control messages; binary frames carry encrypted content chunks.
 */
import { z } from 'zod';
import { AnalyticsReport } from './analytics-report.ts';
import { AgeBand, Region } from './classification.ts';
import { ERROR_CODES } from './errors.ts';
import { LIMITS } from './limits.ts';

export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------- building blocks

const RequestId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const Epoch = z.number().int().nonnegative().max(8.64e15);
export const Email = z
  .string()
  .trim()
  .toLowerCase()
  .max(LIMITS.maxEmailLength)
  .regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, 'must be an e-mail address');
export const Password = z.string().min(LIMITS.minPasswordLength).max(LIMITS.maxPasswordLength);
export const DisplayName = z
  .string()
  .trim()
  .min(1)
  .max(LIMITS.maxNameLength)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');
export const TerminalId = z.string().regex(/^[0-9a-f]{32}$/, 'must be a terminal id (32 hex characters)');
export const OrderId = z.uuid();
export const ItemNumber = z.number().int().min(1).max(999_999_999);
const B64 = (maxLength: number) =>
  z
    .string()
    .max(maxLength)
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url');
export const SessionToken = B64(64).min(40);
export const PairingCode = z
  .string()
  .trim()
  .toUpperCase()
  .regex(/^[A-HJ-NP-Z2-9]{4}-?[A-HJ-NP-Z2-9]{4}$/, 'must look like ABCD-2345');
export const TerminalKind = z.enum(['headless', 'desktop', 'set-top', 'browser']);
export const SignedEnvelope = z.strictObject({ data: B64(16_384), sig: B64(100) });
/** An ad creative, base64url (a pre-roll travels whole inside its delivery). */
const Creative = B64(Math.ceil((LIMITS.maxCreativeBytes * 4) / 3) + 4);

/** When content and key are delivered. Claim 18: a delivery start time or a key delivery time. */
export const Schedule = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('now') }),
  z.strictObject({ mode: z.literal('delivery-start'), at: Epoch }),
  z.strictObject({ mode: z.literal('key-delivery'), at: Epoch }),
]);
export type Schedule = z.infer<typeof Schedule>;

// ---------------------------------------------------------------- views sent to clients

export const CatalogItem = z.strictObject({
  itemNumber: ItemNumber,
  title: z.string(),
  genre: z.string(),
  year: z.number().int().nullable(),
  synopsis: z.string(),
  durationSeconds: z.number().nonnegative(),
  priceCents: z.number().int().nonnegative(),
  posterUrl: z.string().nullable(),
  size: z.number().int().nonnegative(),
  mimeType: z.string(),
});
export type CatalogItem = z.infer<typeof CatalogItem>;

export const TerminalView = z.strictObject({
  terminalId: TerminalId,
  name: z.string(),
  kind: TerminalKind,
  online: z.boolean(),
  linkedAt: Epoch.nullable(),
  lastSeenAt: Epoch.nullable(),
});
export type TerminalView = z.infer<typeof TerminalView>;

export const ContentState = z.enum(['scheduled', 'waiting-terminal', 'delivering', 'delivered']);
export type ContentState = z.infer<typeof ContentState>;
export const KeyState = z.enum(['scheduled', 'waiting-terminal', 'delivered', 'not-delivered']);
export type KeyState = z.infer<typeof KeyState>;
/** One status a person can read: what the rental is doing now. */
export const OrderStatus = z.enum([
  'scheduled', // nothing due yet
  'delivering', // content on its way
  'waiting-key', // content there (or arriving), key not released yet
  'key-delivered', // licence on the terminal, window not open yet
  'window-open', // playable now
  'expired',
]);
export type OrderStatus = z.infer<typeof OrderStatus>;

export const OrderView = z.strictObject({
  orderId: OrderId,
  itemNumber: ItemNumber,
  title: z.string(),
  terminalId: TerminalId,
  terminalName: z.string(),
  periodSeconds: z.number().int().positive(),
  contentAt: Epoch,
  keyAt: Epoch,
  notBefore: Epoch,
  notAfter: Epoch,
  contentState: ContentState,
  keyState: KeyState,
  status: OrderStatus,
  chunksDelivered: z.number().int().nonnegative(),
  totalChunks: z.number().int().positive(),
  size: z.number().int().nonnegative(),
  priceCents: z.number().int().nonnegative(),
  createdAt: Epoch,
});
export type OrderView = z.infer<typeof OrderView>;

export const CustomerView = z.strictObject({
  customerId: z.string(),
  email: z.string(),
  name: z.string(),
  /** May open the analytics view. */
  admin: z.boolean(),
});
export type CustomerView = z.infer<typeof CustomerView>;

// ---------------------------------------------------------------- client -> server

const req = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.strictObject({ type: z.literal(type), id: RequestId, ...shape });
const note = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.strictObject({ type: z.literal(type), id: RequestId.optional(), ...shape });

export const PlaceOrder = req('order.place', {
  itemNumber: ItemNumber,
  terminalId: TerminalId,
  periodSeconds: z.number().int().positive().max(LIMITS.maxRentalSeconds),
  schedule: Schedule,
});
export type PlaceOrder = z.infer<typeof PlaceOrder>;

/** Messages a customer (store app) sends. */
export const CustomerMessage = z.discriminatedUnion('type', [
  req('auth.register', {
    email: Email,
    password: Password,
    name: DisplayName,
    /** Optional, for classification (claims 16/22/28); never required to rent. */
    ageBand: AgeBand.optional(),
    region: Region.optional(),
  }),
  req('auth.login', { email: Email, password: Password }),
  req('auth.resume', { token: SessionToken }),
  req('auth.logout', {}),
  req('catalog.list', {}),
  req('terminal.link', { code: PairingCode, name: DisplayName }),
  req('terminal.list', {}),
  req('terminal.rename', { terminalId: TerminalId, name: DisplayName }),
  req('terminal.unlink', { terminalId: TerminalId }),
  PlaceOrder,
  req('order.list', {}),
  /** Admins only: rentals and ad impressions over the last `days` days. */
  req('analytics.report', { days: z.number().int().min(1).max(3650).optional() }),
  req('ping', {}),
]);
export type CustomerMessage = z.infer<typeof CustomerMessage>;

/** Messages a terminal (player or headless) sends. */
export const TerminalMessage = z.discriminatedUnion('type', [
  req('terminal.auth', {
    signPublicKey: B64(64),
    signature: B64(100),
    kind: TerminalKind,
    name: DisplayName,
    /** This terminal takes a new delivery's chunks right behind its offer (DeliveryOffer.pushed). */
    pushedOffers: z.boolean().optional(),
  }),
  req('terminal.pairing.refresh', {}),
  req('time.sync', {}),
  note('delivery.accept', {
    orderId: OrderId,
    from: z.number().int().nonnegative(),
    /** The terminal already holds this order's pre-roll: do not send it again. */
    hasPreroll: z.boolean().optional(),
  }),
  note('delivery.progress', { orderId: OrderId, have: z.number().int().nonnegative() }),
  note('delivery.reject', { orderId: OrderId, reason: z.string().max(200) }),
  note('licence.ack', { orderId: OrderId }),
  /** An ad was shown; the terminal's own id for it makes a resend count once. */
  req('ad.impression', {
    impressionId: z.uuid(),
    adId: z.uuid(),
    shownAt: Epoch,
    completed: z.boolean(),
  }),
]);
export type TerminalMessage = z.infer<typeof TerminalMessage>;

/** Messages a content server sends the key server over the peer link. */
export const PeerMessage = z.discriminatedUnion('type', [
  req('peer.auth', { mac: B64(100) }),
  note('delivery.status', {
    orderId: OrderId,
    have: z.number().int().nonnegative(),
    total: z.number().int().positive(),
    state: ContentState,
  }),
]);
export type PeerMessage = z.infer<typeof PeerMessage>;

export const ClientMessage = z.discriminatedUnion('type', [
  ...CustomerMessage.options,
  ...TerminalMessage.options,
  ...PeerMessage.options,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type ClientMessageType = ClientMessage['type'];
export const CUSTOMER_TYPES = new Set<string>(CustomerMessage.options.map((o) => o.shape.type.value));
export const TERMINAL_TYPES = new Set<string>(TerminalMessage.options.map((o) => o.shape.type.value));
export const PEER_TYPES = new Set<string>(PeerMessage.options.map((o) => o.shape.type.value));

// ---------------------------------------------------------------- server -> client

export const AuthResult = z.strictObject({ token: SessionToken, customer: CustomerView });
export const TerminalWelcome = z.strictObject({
  terminalId: TerminalId,
  linked: z.boolean(),
  pairingCode: z.string().nullable(),
  pairingExpiresAt: Epoch.nullable(),
  /** Where to fetch content from when the content store runs as its own process. */
  contentUrls: z.array(z.string().max(500)).max(16),
});
export type TerminalWelcome = z.infer<typeof TerminalWelcome>;

/** What each request's successful result carries. */
export const ResultValues = {
  'auth.register': AuthResult,
  'auth.login': AuthResult,
  'auth.resume': AuthResult,
  'auth.logout': z.strictObject({}),
  'catalog.list': z.strictObject({ items: z.array(CatalogItem) }),
  'terminal.link': z.strictObject({ terminal: TerminalView }),
  'terminal.list': z.strictObject({ terminals: z.array(TerminalView) }),
  'terminal.rename': z.strictObject({ terminal: TerminalView }),
  'terminal.unlink': z.strictObject({}),
  'order.place': z.strictObject({ order: OrderView }),
  'order.list': z.strictObject({ orders: z.array(OrderView) }),
  'analytics.report': AnalyticsReport,
  ping: z.strictObject({ time: Epoch }),
  'terminal.auth': TerminalWelcome,
  'terminal.pairing.refresh': TerminalWelcome,
  'time.sync': z.strictObject({ time: SignedEnvelope }),
  'delivery.accept': z.strictObject({}),
  'delivery.progress': z.strictObject({}),
  'delivery.reject': z.strictObject({}),
  'licence.ack': z.strictObject({}),
  'ad.impression': z.strictObject({}),
  'peer.auth': z.strictObject({}),
  'delivery.status': z.strictObject({}),
} satisfies Record<ClientMessageType, z.ZodType>;
export type ResultValue<T extends ClientMessageType> = z.infer<(typeof ResultValues)[T]>;

/** Signed server time: the terminal's defence against a clock turned back. */
export const SignedTime = z.strictObject({ t: Epoch, nonce: z.string().max(100) });

export const DeliveryOffer = z.strictObject({
  type: z.literal('delivery.offer'),
  orderId: OrderId,
  itemNumber: ItemNumber,
  title: z.string(),
  mimeType: z.string(),
  size: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive(),
  totalChunks: z.number().int().positive(),
  notBefore: Epoch,
  notAfter: Epoch,
  /**
   * The chunks follow from the first without waiting for delivery.accept (a new delivery, to a
   * terminal that said it takes pushed offers): the offer and the first chunks travel together, a
   * round trip sooner. The terminal answers no accept; one that holds chunks of the order already
   * reports them (delivery.progress), and the server goes on from there.
   */
  pushed: z.literal(true).optional(),
});
export type DeliveryOffer = z.infer<typeof DeliveryOffer>;

export const ServerMessage = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('server.hello'),
    v: z.number().int(),
    role: z.enum(['all', 'key', 'content']),
    serverPublicKey: B64(64),
    nonce: B64(64),
    time: SignedEnvelope,
  }),
  z.strictObject({ type: z.literal('result'), re: RequestId, value: z.unknown() }),
  z.strictObject({
    type: z.literal('error'),
    re: RequestId.nullable(),
    code: z.enum(ERROR_CODES),
    message: z.string(),
    issues: z.array(z.string()).optional(),
  }),
  z.strictObject({ type: z.literal('order.update'), order: OrderView }),
  z.strictObject({ type: z.literal('terminal.update'), terminal: TerminalView }),
  z.strictObject({ type: z.literal('terminal.removed'), terminalId: TerminalId }),
  z.strictObject({
    type: z.literal('terminal.linked'),
    linked: z.boolean(),
    name: z.string(),
    pairingCode: z.string().nullable(),
    pairingExpiresAt: Epoch.nullable(),
  }),
  DeliveryOffer,
  z.strictObject({ type: z.literal('licence.deliver'), orderId: OrderId, licence: SignedEnvelope }),
  /** The pre-roll attached to a delivery (claims 14/20/26), sent ahead of its first chunk. */
  z.strictObject({
    type: z.literal('delivery.preroll'),
    orderId: OrderId,
    preroll: SignedEnvelope,
    creative: Creative,
  }),
  z.strictObject({
    type: z.literal('delivery.instruct'),
    orderId: OrderId,
    itemNumber: ItemNumber,
    terminalId: TerminalId,
    /** The per-order content key, secretboxed under the peer link key. */
    sealedKey: B64(200),
    notBefore: Epoch,
    notAfter: Epoch,
    /** The delivery starts as its order is placed: its chunks may follow the offer at once. */
    fresh: z.boolean().optional(),
    preroll: z.strictObject({ envelope: SignedEnvelope, creative: Creative }).optional(),
  }),
  z.strictObject({ type: z.literal('delivery.cancel'), orderId: OrderId }),
  /** An ad for the terminal's idle and waiting screens (claims 19/25). */
  z.strictObject({
    type: z.literal('ad.push'),
    adId: z.uuid(),
    text: z.string().max(200),
    mimeType: z.string().max(100),
    creativeUrl: z.string().max(200),
  }),
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
export type ServerMessageOf<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

// ---------------------------------------------------------------- binary chunk frames

/** Binary frame: 'R' 'D' version(1) | order uuid (16 bytes) | chunk index (u32 BE) | ciphertext. */
export const CHUNK_FRAME_HEADER = 2 + 1 + 16 + 4;

export function encodeChunkFrame(orderId: string, index: number, cipher: Uint8Array): Uint8Array {
  const frame = new Uint8Array(CHUNK_FRAME_HEADER + cipher.length);
  frame[0] = 0x52;
  frame[1] = 0x44;
  frame[2] = 1;
  frame.set(uuidToBytes(orderId), 3);
  new DataView(frame.buffer, frame.byteOffset).setUint32(19, index);
  frame.set(cipher, CHUNK_FRAME_HEADER);
  return frame;
}

export function decodeChunkFrame(
  frame: Uint8Array,
): { orderId: string; index: number; cipher: Uint8Array } | undefined {
  if (frame.length <= CHUNK_FRAME_HEADER || frame[0] !== 0x52 || frame[1] !== 0x44 || frame[2] !== 1) {
    return undefined;
  }
  const orderId = bytesToUuid(frame.subarray(3, 19));
  const index = new DataView(frame.buffer, frame.byteOffset).getUint32(19);
  return { orderId, index, cipher: frame.subarray(CHUNK_FRAME_HEADER) };
}

function uuidToBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Two hex digits for each byte value. */
const HEX = Array.from({ length: 256 }, (_, x) => x.toString(16).padStart(2, '0'));

/** Every chunk a terminal receives names its order: a table and plain concatenation, not arrays. */
function bytesToUuid(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
    s += HEX[b[i] as number];
  }
  return s;
}

/** Human-readable list of what is wrong with a message, one line per field. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.slice(0, 20).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`);
}
