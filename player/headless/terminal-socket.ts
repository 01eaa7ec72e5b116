/**
 * The headless terminal's WebSocket client (RFC 6455, plain `ws://`): the same events as a browser's
 * WebSocket, but received bytes never land in new memory. The socket reads into one buffer shared by
 * every connection in the process (`net` with `onread`), and each binary message (a content chunk)
 * is copied from it into a buffer from message-pool.ts that the terminal core hands back once the
 * chunk is written. With the `ws` package, every read and every message was a new buffer: at
 * 400 MB/s, V8 answered that much new external memory with full garbage collections, and their
 * marking was a third of the terminal's CPU per MiB delivered (`perf record` on the farm).
 *
 * `wss://` (and anything unusual) goes through `ws` as before: see `terminalSocket`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { fillRandom } from '../../server/random-pool.ts';
import { LIMITS } from '../../shared/limits.ts';
import type { SocketLike } from '../../shared/rental-client.ts';
import { corkerFor } from '../../shared/socket-cork.ts';
import { frameHeadBytes, writeFrameHead } from '../../shared/websocket-frame.ts';
import { recycleMessageBuffer, takeMessageBuffer } from './message-pool.ts';

/** The largest message the server sends a terminal: a pre-roll creative in JSON (base64), with room. */
export const MAX_MESSAGE_BYTES = 4 * LIMITS.maxCreativeBytes;
const MAX_HANDSHAKE_BYTES = 16 * 1024;
const CLOSE_TIMEOUT_MS = 2000;
const HANDSHAKE_TIMEOUT_MS = 15_000;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Why a connection was dropped: the close code RFC 6455 gives it, and what was wrong. */
export class WebSocketProtocolError extends Error {
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'WebSocketProtocolError';
  }
}

export interface FrameHandlers {
  /** A text message, decoded. */
  text(s: string): void;
  /** A binary message, in a buffer of its own (from message-pool.ts unless fragmented). */
  binary(b: Uint8Array): void;
  ping(payload: Uint8Array): void;
  close(code: number, reason: string): void;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function decodeUtf8(b: Uint8Array): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new WebSocketProtocolError(1007, 'a text message is not valid UTF-8');
  }
}

/**
 * Server-to-client frames, fed as they arrive in views that are valid only during `feed`: whatever
 * must outlive the call is copied out. Throws WebSocketProtocolError on anything RFC 6455 forbids
 * a server to send (masked frames, reserved bits, unknown opcodes, oversized or fragmented control
 * frames, a message over the limit); the connection must then be dropped.
 */
export class FrameParser {
  private readonly head = new Uint8Array(14);
  private headLength = 0;
  /** The frame being read: its opcode, whether it ends a message, and where its payload goes. */
  private opcode = 0;
  private fin = false;
  private payload: Uint8Array | undefined;
  private filled = 0;
  /** A fragmented message's opcode and parts so far. */
  private fragmentOpcode = 0;
  private fragments: Uint8Array[] = [];
  private fragmentBytes = 0;
  /** Set once a close frame arrived: nothing after it counts. */
  private closed = false;

  constructor(
    private readonly on: FrameHandlers,
    private readonly maxMessageBytes = MAX_MESSAGE_BYTES,
  ) {}

  feed(input: Uint8Array): void {
    let at = 0;
    while (at < input.length && !this.closed) {
      if (!this.payload) {
        // The header: two bytes, then as many more as its length field says.
        for (
          let need = this.headNeeds();
          this.headLength < need && at < input.length;
          need = this.headNeeds()
        ) {
          const take = Math.min(need - this.headLength, input.length - at);
          this.head.set(input.subarray(at, at + take), this.headLength);
          this.headLength += take;
          at += take;
        }
        if (this.headLength < this.headNeeds()) break; // the rest comes with the next read
        const length = this.startFrame();
        // An empty binary message gets a buffer of its own, not a view of the shared read buffer.
        if (length === 0 && this.opcode === 2 && this.fin) {
          this.headLength = 0;
          this.deliver(2, new Uint8Array(0));
          continue;
        }
        // A whole text frame already here is decoded where it lies, without a copy.
        if (length === 0 || (this.opcode === 1 && this.fin && input.length - at >= length)) {
          this.headLength = 0;
          this.endFrame(input.subarray(at, at + length));
          at += length;
          continue;
        }
        this.payload = this.opcode === 2 && this.fin ? takeMessageBuffer(length) : new Uint8Array(length);
        this.filled = 0;
        this.headLength = 0;
      }
      const payload = this.payload;
      const take = Math.min(payload.length - this.filled, input.length - at);
      payload.set(input.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
      if (this.filled === payload.length) {
        this.payload = undefined;
        this.endFrame(payload);
      }
    }
  }

  /** Bytes of header the frame needs, as far as what has arrived tells. */
  private headNeeds(): number {
    if (this.headLength < 2) return 2;
    const len7 = (this.head[1] as number) & 0x7f;
    return len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
  }

  /** Check the header and return the payload's length. */
  private startFrame(): number {
    const b0 = this.head[0] as number;
    const b1 = this.head[1] as number;
    if (b0 & 0x70) throw new WebSocketProtocolError(1002, 'reserved bits set (no extension was agreed)');
    if (b1 & 0x80) throw new WebSocketProtocolError(1002, 'a server frame is masked');
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    let length = b1 & 0x7f;
    const view = new DataView(this.head.buffer);
    if (length === 126) length = view.getUint16(2);
    else if (length === 127) {
      if (view.getUint32(2) !== 0) throw new WebSocketProtocolError(1009, 'frame too large');
      length = view.getUint32(6);
    }
    const op = this.opcode;
    if (op >= 8) {
      if (op > 10) throw new WebSocketProtocolError(1002, `unknown control opcode ${op}`);
      if (!this.fin) throw new WebSocketProtocolError(1002, 'a control frame is fragmented');
      if (length > 125) throw new WebSocketProtocolError(1002, 'a control frame is longer than 125 bytes');
      return length;
    }
    if (op > 2) throw new WebSocketProtocolError(1002, `unknown data opcode ${op}`);
    if (op === 0 && this.fragmentOpcode === 0)
      throw new WebSocketProtocolError(1002, 'a continuation frame with no message to continue');
    if (op !== 0 && this.fragmentOpcode !== 0)
      throw new WebSocketProtocolError(1002, 'a new message began inside a fragmented one');
    if ((op === 0 ? this.fragmentBytes : 0) + length > this.maxMessageBytes)
      throw new WebSocketProtocolError(1009, `message larger than ${this.maxMessageBytes} bytes`);
    return length;
  }

  private endFrame(payload: Uint8Array): void {
    const op = this.opcode;
    if (op === 10) return; // an unasked pong: nothing to do
    if (op === 9) this.on.ping(payload.slice());
    else if (op === 8) {
      this.closed = true;
      if (payload.length === 1) throw new WebSocketProtocolError(1002, 'a close frame of one byte');
      const code = payload.length >= 2 ? (payload[0] as number) * 256 + (payload[1] as number) : 1005;
      this.on.close(code, decodeUtf8(payload.subarray(2)));
    } else if (op !== 0 && this.fin) this.deliver(op, payload);
    else this.fragment(op, payload);
  }

  /** Part of a fragmented message: the parts are copies (the payload may be a view of the input). */
  private fragment(op: number, payload: Uint8Array): void {
    if (op !== 0) this.fragmentOpcode = op;
    this.fragments.push(payload.slice());
    this.fragmentBytes += payload.length;
    if (!this.fin) return;
    const whole = Buffer.concat(this.fragments, this.fragmentBytes);
    const kind = this.fragmentOpcode;
    this.fragments = [];
    this.fragmentBytes = 0;
    this.fragmentOpcode = 0;
    this.deliver(kind, new Uint8Array(whole.buffer, whole.byteOffset, whole.length));
  }

  private deliver(op: number, payload: Uint8Array): void {
    if (op === 1) this.on.text(decodeUtf8(payload));
    else this.on.binary(payload);
  }
}

/** One client frame, masked, in one buffer. */
export function clientFrame(opcode: number, payload: Uint8Array): Buffer {
  const n = payload.length;
  const frame = Buffer.allocUnsafe(frameHeadBytes(n, true) + n);
  const head = writeFrameHead(frame, 0, opcode, n, true);
  // The mask key must be unpredictable (RFC 6455 §5.3): the CSPRNG, through the pool (no system call per frame).
  fillRandom(frame, head - 4, 4);
  for (let i = 0; i < n; i++)
    frame[head + i] = (payload[i] as number) ^ (frame[head - 4 + (i & 3)] as number);
  return frame;
}

/** One read buffer for every connection: each read is parsed, and copied from, before the next. */
const READ_BUFFER_BYTES = 256 * 1024;
let readBuffer: Buffer | undefined;

type Listener = (ev: { data?: unknown; code?: number; reason?: string; error?: unknown }) => void;
type EventName = 'open' | 'close' | 'error' | 'message';

export class TerminalSocket implements SocketLike {
  readyState = 0;
  /** Binary messages are always Uint8Array views of pooled buffers; the setting is kept for the interface. */
  binaryType = 'arraybuffer';
  /** Hand a binary message's buffer back once done with it (message-pool.ts). */
  readonly recycle = recycleMessageBuffer;
  private readonly socket: Socket;
  private readonly key = randomBytes(16).toString('base64');
  private readonly listeners: Record<EventName, Listener[]> = { open: [], close: [], error: [], message: [] };
  private handshake: Buffer | undefined = Buffer.alloc(0);
  private readonly parser: FrameParser;
  private closeCode = 1006;
  private closeReason = '';
  private closeSent = false;
  private timer: NodeJS.Timeout | undefined;
  /** Set once the connection failed: whatever still arrives is not read. */
  private broken = false;

  constructor(readonly url: string) {
    const u = new URL(url);
    if (u.protocol !== 'ws:') throw new TypeError(`not a ws:// address: ${url}`);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const port = u.port ? Number(u.port) : 80;
    readBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    this.parser = new FrameParser({
      text: (s) => this.emit('message', { data: s }),
      binary: (b) => this.emit('message', { data: b }),
      ping: (p) => this.write(clientFrame(10, p)),
      close: (code, reason) => this.onCloseFrame(code, reason),
    });
    this.socket = connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (n: number, buf: Uint8Array) => {
          this.onBytes(buf.subarray(0, n));
          return true;
        },
      },
    });
    this.corkForTurn = corkerFor(this.socket);
    this.socket.on('connect', () => {
      const path = `${u.pathname || '/'}${u.search}`;
      this.socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.finish());
    this.timer = setTimeout(
      () => this.fail(new Error('the WebSocket handshake timed out')),
      HANDSHAKE_TIMEOUT_MS,
    );
  }

  addEventListener(type: EventName, listener: Listener): void {
    this.listeners[type].push(listener);
  }

  send(data: string | Uint8Array): void {
    if (this.readyState !== 1) return;
    this.write(
      clientFrame(typeof data === 'string' ? 1 : 2, typeof data === 'string' ? Buffer.from(data) : data),
    );
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState >= 2) return;
    if (this.readyState === 0) {
      this.closeCode = 1006;
      this.readyState = 2;
      this.socket.destroy();
      return;
    }
    this.sendClose(code, reason);
  }

  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }

  /**
   * A listener's exception is not the connection's fault: like Node's EventTarget, it is thrown
   * again outside (an uncaught exception), and the other listeners and the connection go on.
   */
  private emit(type: EventName, ev: Parameters<Listener>[0]): void {
    for (const l of this.listeners[type]) {
      try {
        l(ev);
      } catch (err) {
        process.nextTick(() => {
          throw err;
        });
      }
    }
  }

  /**
   * Frames sent in one turn (a licence's acknowledgement and a title's report, whose file work ended
   * together) leave in one write: one system call here, and one wake-up of the server instead of two.
   */
  private readonly corkForTurn: () => void;
  private write(frame: Buffer): void {
    if (this.socket.destroyed) return;
    this.corkForTurn();
    this.socket.write(frame);
  }

  private onBytes(bytes: Uint8Array): void {
    if (this.broken) return;
    try {
      if (this.handshake) {
        const rest = this.onHandshakeBytes(bytes);
        if (!rest) return;
        bytes = rest;
      }
      if (this.readyState === 1 || this.readyState === 2) this.parser.feed(bytes);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** Collect the server's answer to the upgrade; once whole and right, open and return what follows it. */
  private onHandshakeBytes(bytes: Uint8Array): Uint8Array | undefined {
    const all = Buffer.concat([this.handshake as Buffer, bytes]);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) {
      if (all.length > MAX_HANDSHAKE_BYTES) throw new Error('the server answered with an oversized header');
      this.handshake = all;
      return undefined;
    }
    this.handshake = undefined;
    const [status = '', ...lines] = all.subarray(0, end).toString('latin1').split('\r\n');
    if (!/^HTTP\/1\.1 101 /.test(`${status} `))
      throw new Error(`Unexpected server response: ${status.split(' ')[1] ?? status}`);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const accept = createHash('sha1')
      .update(this.key + GUID)
      .digest('base64');
    if (headers.get('upgrade')?.toLowerCase() !== 'websocket')
      throw new Error('the server did not upgrade to WebSocket');
    if (headers.get('sec-websocket-accept') !== accept) throw new Error('the server answered the wrong key');
    if (headers.has('sec-websocket-extensions') || headers.has('sec-websocket-protocol'))
      throw new Error('the server chose an extension or subprotocol none was asked for');
    clearTimeout(this.timer);
    this.timer = undefined;
    this.readyState = 1;
    this.emit('open', {});
    return all.subarray(end + 4);
  }

  private sendClose(code: number, reason: string): void {
    this.readyState = 2;
    if (this.closeSent) return;
    this.closeSent = true;
    const r = Buffer.from(reason.slice(0, 120));
    const payload = Buffer.alloc(2 + r.length);
    payload.writeUInt16BE(code, 0);
    r.copy(payload, 2);
    this.write(clientFrame(8, payload));
    // The server closes the TCP connection after answering; if it does not, drop it.
    this.timer ??= setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS);
  }

  private onCloseFrame(code: number, reason: string): void {
    this.closeCode = code;
    this.closeReason = reason;
    if (!this.closeSent) this.sendClose(code === 1005 ? 1000 : code, '');
    this.socket.end();
  }

  /** Something went wrong: report it, tell the server why if the protocol was at fault, and drop the connection. */
  private fail(err: Error): void {
    if (this.readyState === 3 || this.broken) return;
    this.broken = true;
    this.emit('error', { error: err });
    if (err instanceof WebSocketProtocolError && this.readyState === 1) {
      this.sendClose(err.closeCode, err.message);
      this.closeCode = err.closeCode;
      this.socket.end();
    } else this.socket.destroy();
  }

  private finish(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    clearTimeout(this.timer);
    this.emit('close', { code: this.closeCode, reason: this.closeReason });
  }
}

/**
 * The socket a headless terminal connects with: TerminalSocket for `ws://`, the `ws` package for
 * `wss://` (TLS does not read into a caller's buffer, so the gain is not there to have).
 */
export function terminalSocket(url: string): SocketLike {
  if (url.startsWith('ws://')) return new TerminalSocket(url);
  return new WebSocket(url) as unknown as SocketLike;
}
