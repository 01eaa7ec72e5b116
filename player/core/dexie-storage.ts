/**
 * Terminal storage in IndexedDB through Dexie: the player app's. Versions are append-only: never
 * edit a shipped `version(n)`, add the next one. When the player runs in its Electron shell, the
 * secret key is encrypted with the OS keychain (safeStorage) through the shell bridge before it is
 * stored; in a plain browser it is stored as is (IndexedDB is private to the origin).
 */
import { Dexie, type Table } from 'dexie';
import { fromB64, type Identity, type SignedEnvelope, toB64 } from '../../shared/crypto.ts';
import type {
  PendingImpression,
  StoredPreroll,
  StoredRental,
  TerminalState,
  TerminalStorage,
} from './terminal-storage.ts';

interface KeyRow {
  id: 'self';
  signPublicKey: string;
  signSecretKey: string;
  /** True when signSecretKey is sealed by the shell's safeStorage. */
  protected: boolean;
}
interface StateRow extends TerminalState {
  id: 'state';
}
interface ChunkRow {
  orderId: string;
  index: number;
  data: Uint8Array;
}
interface LicenceRow {
  orderId: string;
  licence: SignedEnvelope;
}
interface PrerollRow extends StoredPreroll {
  orderId: string;
}
interface PositionRow {
  orderId: string;
  seconds: number;
}

/** Optional key protection offered by the Electron shell. */
export interface KeyProtector {
  protect(plain: string): Promise<string>;
  unprotect(sealed: string): Promise<string>;
}

class PlayerDb extends Dexie {
  identity!: Table<KeyRow, string>;
  state!: Table<StateRow, string>;
  rentals!: Table<StoredRental, string>;
  chunks!: Table<ChunkRow, [string, number]>;
  licences!: Table<LicenceRow, string>;
  positions!: Table<PositionRow, string>;
  impressions!: Table<PendingImpression, string>;
  prerolls!: Table<PrerollRow, string>;

  constructor(name: string) {
    super(name);
    this.version(1).stores({
      identity: 'id',
      state: 'id',
      rentals: 'orderId',
      chunks: '[orderId+index], orderId',
      licences: 'orderId',
      positions: 'orderId',
    });
    this.version(2).stores({ impressions: 'impressionId' });
    this.version(3).stores({ prerolls: 'orderId' });
  }
}

export class DexieStorage implements TerminalStorage {
  readonly db: PlayerDb;

  constructor(
    name = 'rental-player',
    private readonly protector?: KeyProtector,
  ) {
    this.db = new PlayerDb(name);
  }

  async loadIdentity(): Promise<Identity | undefined> {
    const row = await this.db.identity.get('self');
    if (!row) return undefined;
    const secret =
      row.protected && this.protector ? await this.protector.unprotect(row.signSecretKey) : row.signSecretKey;
    return { signPublicKey: fromB64(row.signPublicKey), signSecretKey: fromB64(secret) };
  }
  async saveIdentity(id: Identity): Promise<void> {
    const secret = toB64(id.signSecretKey);
    await this.db.identity.put({
      id: 'self',
      signPublicKey: toB64(id.signPublicKey),
      signSecretKey: this.protector ? await this.protector.protect(secret) : secret,
      protected: Boolean(this.protector),
    });
  }
  async loadState(): Promise<TerminalState> {
    const row = await this.db.state.get('state');
    return row
      ? { highWater: row.highWater, serverPublicKey: row.serverPublicKey }
      : { highWater: 0, serverPublicKey: null };
  }
  async saveState(state: TerminalState): Promise<void> {
    await this.db.state.put({ id: 'state', ...state });
  }
  rentals(): Promise<StoredRental[]> {
    return this.db.rentals.toArray();
  }
  rental(orderId: string): Promise<StoredRental | undefined> {
    return this.db.rentals.get(orderId);
  }
  async putRental(r: StoredRental): Promise<void> {
    await this.db.rentals.put({ ...r });
  }
  async writeChunk(r: StoredRental, index: number, cipher: Uint8Array): Promise<void> {
    await this.db.chunks.put({ orderId: r.orderId, index, data: cipher });
  }
  async writeChunks(r: StoredRental, first: number, ciphers: Uint8Array[]): Promise<void> {
    await this.db.chunks.bulkPut(ciphers.map((data, k) => ({ orderId: r.orderId, index: first + k, data })));
  }
  async readChunks(r: StoredRental, first: number, count: number): Promise<Uint8Array[]> {
    const rows = await this.db.chunks.bulkGet(
      Array.from({ length: count }, (_, k) => [r.orderId, first + k]),
    );
    const out: Uint8Array[] = [];
    for (const row of rows) {
      if (!row) break;
      out.push(row.data);
    }
    return out;
  }
  async readChunk(r: StoredRental, index: number): Promise<Uint8Array | undefined> {
    return (await this.db.chunks.get([r.orderId, index]))?.data;
  }
  async flush(): Promise<void> {
    // IndexedDB commits each write transaction durably before resolving it.
  }
  async licence(orderId: string): Promise<SignedEnvelope | undefined> {
    return (await this.db.licences.get(orderId))?.licence;
  }
  async putLicence(orderId: string, licence: SignedEnvelope): Promise<void> {
    await this.db.licences.put({ orderId, licence });
  }
  async wipe(orderId: string): Promise<void> {
    await this.db.transaction(
      'rw',
      this.db.licences,
      this.db.chunks,
      this.db.rentals,
      this.db.positions,
      this.db.prerolls,
      async () => {
        await this.db.licences.delete(orderId);
        await this.db.prerolls.delete(orderId);
        await this.db.chunks.where('orderId').equals(orderId).delete();
        await this.db.positions.delete(orderId);
        const r = await this.db.rentals.get(orderId);
        if (r) await this.db.rentals.put({ ...r, expired: true, have: 0 });
      },
    );
  }

  async preroll(orderId: string): Promise<StoredPreroll | undefined> {
    const row = await this.db.prerolls.get(orderId);
    return row && { envelope: row.envelope, creative: row.creative, played: row.played };
  }
  async putPreroll(orderId: string, p: StoredPreroll): Promise<void> {
    await this.db.prerolls.put({ orderId, ...p });
  }

  async queueImpression(i: PendingImpression): Promise<void> {
    await this.db.impressions.put(i);
  }
  pendingImpressions(): Promise<PendingImpression[]> {
    return this.db.impressions.toArray();
  }
  async dropImpression(impressionId: string): Promise<void> {
    await this.db.impressions.delete(impressionId);
  }

  async position(orderId: string): Promise<number> {
    return (await this.db.positions.get(orderId))?.seconds ?? 0;
  }
  async savePosition(orderId: string, seconds: number): Promise<void> {
    await this.db.positions.put({ orderId, seconds });
  }
}
