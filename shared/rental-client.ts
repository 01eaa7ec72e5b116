/**
 * A typed request/response client over one WebSocket, for the store app, the CLI, tests and the
 * demo. The socket implementation is injected (browser WebSocket or the `ws` package), so this
 * module stays free of Node and DOM imports.
 */
import { ChurnMap } from './churn-map.ts';
import { type ErrorCode, RentalError } from './errors.ts';
import {
  type CustomerMessage,
  type ResultValue,
  ResultValues,
  ServerMessage,
  type ServerMessageOf,
} from './protocol.ts';

/** The part of the WebSocket API both the browser and `ws` provide. */
export interface SocketLike {
  readyState: number;
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** Stop and restart reading (Node's ws has them; a browser's WebSocket does not, and never pauses). */
  pause?(): void;
  resume?(): void;
  /**
   * Binary messages may arrive as Uint8Array views of buffers the socket uses again (the headless
   * terminal's socket): the receiver hands each back through this once done with it, and keeps no
   * view of it after. A browser's WebSocket gives each message an ArrayBuffer of its own.
   */
  recycle?(data: Uint8Array): void;
  addEventListener(
    type: 'open' | 'close' | 'error' | 'message',
    listener: (ev: { data?: unknown }) => void,
  ): void;
}
export type SocketFactory = (url: string) => SocketLike;

type CustomerType = CustomerMessage['type'];
type Payload<T extends CustomerType> = Omit<Extract<CustomerMessage, { type: T }>, 'type' | 'id'>;
type PushType = Exclude<ServerMessage['type'], 'result' | 'error' | 'server.hello'>;

export class RentalClient {
  private ws: SocketLike | undefined;
  private nextId = 1;
  /**
   * Requests awaiting their answer (a ChurnMap: each waits milliseconds; see churn-map.ts), with
   * their promise's own resolve and reject and their timeout: no closure of ours per request (under
   * tsx, each named one costs a defineProperty; BENCHMARKS.md).
   */
  private readonly waiting = new ChurnMap<
    number,
    {
      type: CustomerType;
      resolve: (v: unknown) => void;
      reject: (e: Error) => void;
      timer: ReturnType<typeof setTimeout>;
    }
  >();
  private readonly listeners = new Map<string, Set<(m: ServerMessage) => void>>();
  private openPromise: Promise<void> | undefined;
  private readonly closeListeners = new Set<() => void>();

  constructor(
    readonly url: string,
    private readonly socketFactory: SocketFactory,
    private readonly timeoutMs = 15_000,
  ) {}

  connect(): Promise<void> {
    if (this.openPromise) return this.openPromise;
    this.openPromise = new Promise((resolve, reject) => {
      const ws = this.socketFactory(this.url);
      this.ws = ws;
      let opened = false;
      ws.addEventListener('open', () => {
        opened = true;
        resolve();
      });
      ws.addEventListener('error', () => {
        if (!opened) reject(new RentalError('INTERNAL', `cannot reach the server at ${this.url}`));
      });
      ws.addEventListener('close', () => {
        this.openPromise = undefined;
        for (const w of this.waiting.drain()) {
          clearTimeout(w.timer);
          w.reject(new RentalError('INTERNAL', 'connection to the server closed'));
        }
        for (const fn of this.closeListeners) fn();
        if (!opened) reject(new RentalError('INTERNAL', `cannot reach the server at ${this.url}`));
      });
      ws.addEventListener('message', (ev) => this.receive(ev.data));
    });
    return this.openPromise;
  }

  get connected(): boolean {
    return this.ws?.readyState === 1;
  }

  close(): void {
    this.ws?.close();
  }

  request<T extends CustomerType>(type: T, payload: Payload<T>): Promise<ResultValue<T>> {
    const ws = this.ws;
    if (ws?.readyState !== 1)
      return Promise.reject(new RentalError('INTERNAL', 'not connected to the server'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new RentalError('INTERNAL', `the server did not answer ${type} in time`));
      }, this.timeoutMs);
      this.waiting.set(id, { type, resolve: resolve as (v: unknown) => void, reject, timer });
      // `type` and `id` first: properties added after a spread gave each message a hidden class of
      // its own in V8 11 (BENCHMARKS.md). The payload carries neither.
      ws.send(JSON.stringify({ type, id, ...payload }));
    });
  }

  /** Run `fn` when the connection drops. */
  onClose(fn: () => void): () => void {
    this.closeListeners.add(fn);
    return () => this.closeListeners.delete(fn);
  }

  /** Listen for a pushed message type. */
  on<T extends PushType>(type: T, fn: (m: ServerMessageOf<T>) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(fn as (m: ServerMessage) => void);
    return () => set.delete(fn as (m: ServerMessage) => void);
  }

  private emit(m: ServerMessage) {
    for (const fn of this.listeners.get(m.type) ?? []) fn(m);
  }

  private receive(data: unknown) {
    if (typeof data !== 'string') return;
    let raw: unknown;
    try {
      raw = JSON.parse(data);
    } catch {
      return;
    }
    const parsed = ServerMessage.safeParse(raw);
    if (!parsed.success) return;
    const m = parsed.data;
    if (m.type === 'result' || m.type === 'error') {
      const w = m.re === null ? undefined : this.waiting.get(m.re);
      if (!w) return;
      this.waiting.delete(m.re as number);
      clearTimeout(w.timer);
      if (m.type === 'error') return w.reject(new RentalError(m.code as ErrorCode, m.message, m.issues));
      const value = ResultValues[w.type].safeParse(m.value);
      if (value.success) w.resolve(value.data);
      else w.reject(new RentalError('BAD_MESSAGE', `the server sent an invalid ${w.type} result`));
      return;
    }
    this.emit(m);
  }
}
