/**
 * The player app's state around one TerminalCore: connection, pairing, and the library as stored
 * in IndexedDB, refreshed from the core's events (never by polling the server).
 */
import type { SocketLike } from '../../shared/rental-client.ts';
import type { DexieStorage } from '../core/dexie-storage.ts';
import { TerminalCore, type TerminalEvent } from '../core/terminal-core.ts';
import type { StoredRental } from '../core/terminal-storage.ts';

export interface LibraryRow extends StoredRental {
  /** The licence (key) is on this terminal. */
  keyHere: boolean;
}

export interface PlayerState {
  conn: 'connecting' | 'online' | 'offline';
  terminalId: string;
  linked: boolean;
  linkedName: string | null;
  pairingCode: string | null;
  pairingExpiresAt: number | null;
  library: LibraryRow[];
  lastError: string | null;
  /** The latest ad pushed by the server, for the idle and waiting screens. */
  ad: { adId: string; text: string; mimeType: string; creativeUrl: string } | null;
}

/** Remembered so an offline start still knows it is linked, and to whom it was named. */
const NAME_KEY = 'rental.player.name';
const LINKED_KEY = 'rental.player.linked';

export class PlayerSession {
  readonly core: TerminalCore;
  private state: PlayerState = {
    conn: 'connecting',
    terminalId: '',
    linked: false,
    linkedName: null,
    pairingCode: null,
    pairingExpiresAt: null,
    library: [],
    lastError: null,
    ad: null,
  };
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<(e: TerminalEvent) => void>();

  constructor(
    readonly serverUrl: string,
    readonly storage: DexieStorage,
    kind: 'browser' | 'desktop' | 'set-top',
    private readonly remembered: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>,
  ) {
    this.core = new TerminalCore({
      serverUrl,
      storage,
      socketFactory: (url) => new WebSocket(url) as unknown as SocketLike,
      kind,
      name: kind === 'browser' ? 'Browser player' : kind === 'set-top' ? 'Set-top player' : 'Desktop player',
      onEvent: (e) => this.onEvent(e),
    });
  }

  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };
  getState = () => this.state;

  /** Listen to raw terminal events (playback uses this to stop at expiry). */
  onTerminalEvent(fn: (e: TerminalEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  private set(patch: Partial<PlayerState>) {
    this.state = { ...this.state, ...patch };
    for (const fn of this.listeners) fn();
  }

  async start(): Promise<void> {
    await this.core.start();
    this.set({
      terminalId: this.core.terminalId,
      linked: this.state.linked || this.remembered.getItem(LINKED_KEY) === 'yes',
      linkedName: this.state.linkedName ?? this.remembered.getItem(NAME_KEY),
    });
    await this.refreshLibrary();
  }

  async refreshLibrary(): Promise<void> {
    const rows = await this.core.rentals();
    const library = await Promise.all(
      rows.map(async (r): Promise<LibraryRow> => {
        const lic = r.expired ? undefined : await this.core.licenceOf(r.orderId).catch(() => undefined);
        return { ...r, notBefore: lic?.notBefore ?? r.notBefore, keyHere: Boolean(lic) };
      }),
    );
    library.sort((a, b) => Number(a.expired) - Number(b.expired) || b.notAfter - a.notAfter);
    this.set({ library });
  }

  private remember(linked: boolean, name: string | null) {
    if (!linked) {
      this.remembered.removeItem(LINKED_KEY);
      this.remembered.removeItem(NAME_KEY);
      return;
    }
    this.remembered.setItem(LINKED_KEY, 'yes');
    if (name) this.remembered.setItem(NAME_KEY, name);
  }

  private onEvent(e: TerminalEvent) {
    for (const fn of this.eventListeners) fn(e);
    switch (e.type) {
      case 'connected':
        if (e.url === this.serverUrl) this.set({ conn: 'online', lastError: null });
        break;
      case 'disconnected':
        if (e.url === this.serverUrl) this.set({ conn: 'offline' });
        break;
      case 'welcome':
        this.remember(e.linked, null);
        this.set({ linked: e.linked, pairingCode: e.pairingCode, pairingExpiresAt: e.pairingExpiresAt });
        break;
      case 'linked':
        this.remember(e.linked, e.linked ? e.name : null);
        this.set({
          linked: e.linked,
          linkedName: e.linked ? e.name : null,
          pairingCode: e.pairingCode,
          pairingExpiresAt: e.pairingExpiresAt,
        });
        break;
      case 'ad':
        this.set({ ad: { adId: e.adId, text: e.text, mimeType: e.mimeType, creativeUrl: e.creativeUrl } });
        break;
      case 'progress': {
        // Update in place: progress is frequent and needs no storage read.
        const library = this.state.library.map((r) => (r.orderId === e.orderId ? { ...r, have: e.have } : r));
        this.set({ library });
        break;
      }
      case 'server-error':
      case 'local-error':
        this.set({ lastError: e.message });
        break;
      case 'rejected':
        this.set({ lastError: `A delivery was refused: ${e.reason}` });
        void this.refreshLibrary();
        break;
      default:
        void this.refreshLibrary();
    }
  }
}
