/**
 * The key server pushes ads to terminals (claims 19/25): when a linked terminal connects and after
 * it acknowledges a licence, it gets one ad chosen for its owner's segments (their latest
 * classification, or their sign-up answers before any order).
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Segments } from '../../shared/ad-targeting.ts';
import { pickAd } from '../../shared/ad-targeting.ts';
import type { Classification } from '../../shared/classification.ts';
import { hashBytes, toB64 } from '../../shared/crypto.ts';
import { RentalError } from '../../shared/errors.ts';
import { LIMITS } from '../../shared/limits.ts';
import { signPreroll } from '../../shared/preroll.ts';
import type { ConnectionHub } from '../connection-hub.ts';
import type { PrerollAttachment } from '../content/delivery.ts';
import { log } from '../log.ts';
import type { AdRow, OrderRow, Repository } from '../store/repository.ts';

export const AD_CREATIVE_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.webm': 'video/webm',
  '.mp4': 'video/mp4',
};

/** Next to the titles: the HTTP route serves them from `media/ads/`. */
export const adCreativeDir = (dataDir: string) => join(dataDir, 'media', 'ads');

/** Add an ad: its creative is copied into the data folder, served at /ads/<id>. */
export async function addAd(
  repo: Repository,
  dataDir: string,
  ad: {
    text: string;
    creative: string;
    segments: Segments;
    startsAt: number;
    endsAt: number;
    weight: number;
  },
): Promise<AdRow> {
  const ext = extname(ad.creative).toLowerCase();
  const mimeType = AD_CREATIVE_TYPES[ext];
  if (!mimeType)
    throw new RentalError(
      'BAD_MESSAGE',
      `a creative must be one of ${Object.keys(AD_CREATIVE_TYPES).join(', ')}`,
    );
  if (ad.endsAt <= ad.startsAt) throw new RentalError('BAD_SCHEDULE', 'the flight must end after it starts');
  // It travels whole inside each delivery as a pre-roll, so it is kept small.
  if ((await stat(ad.creative)).size > LIMITS.maxCreativeBytes)
    throw new RentalError(
      'TOO_LARGE',
      `a creative may be at most ${LIMITS.maxCreativeBytes / 1024 / 1024} MiB (it travels with every delivery)`,
    );
  const adId = randomUUID();
  await mkdir(adCreativeDir(dataDir), { recursive: true });
  const creativeFile = `${adId}${ext}`;
  await copyFile(ad.creative, join(adCreativeDir(dataDir), creativeFile));
  const row: AdRow = {
    adId,
    text: ad.text,
    creativeFile,
    mimeType,
    segments: ad.segments,
    startsAt: ad.startsAt,
    endsAt: ad.endsAt,
    weight: ad.weight,
    createdAt: Date.now(),
  };
  await repo.addAd(row);
  return row;
}

/** On a first start with the demo catalog: one short video ad for everyone, so the demo shows ads. */
export async function seedDemoAd(repo: Repository, dataDir: string): Promise<boolean> {
  if ((await repo.ads(true)).length > 0) return false;
  const creative = resolve(dirname(fileURLToPath(import.meta.url)), '../../media/demo/ad-popcorn.webm');
  const now = Date.now();
  await addAd(repo, dataDir, {
    text: 'Popcorn: half price tonight',
    creative,
    segments: {},
    startsAt: now,
    endsAt: now + 365 * 86_400_000,
    weight: 1,
  });
  return true;
}

export class AdPusher {
  constructor(
    private readonly hub: ConnectionHub,
    private readonly repo: Repository,
    /** For pre-rolls: where creatives live, and the key that signs them. */
    private readonly dataDir: string,
    private readonly serverSecretKey: Uint8Array,
  ) {
    hub.on('terminal-online', (conn) => void this.pushTo(conn.terminalId as string));
    hub.handle('ad.impression', async (conn, m) => {
      if (!(await repo.ads(true)).some((a) => a.adId === m.adId))
        throw new RentalError('NOT_FOUND', 'no such ad');
      if (m.shownAt > Date.now() + 60_000) throw new RentalError('BAD_MESSAGE', 'impression from the future');
      await repo.recordImpression({ ...m, terminalId: conn.terminalId as string });
      return {};
    });
  }

  /** Send the terminal one ad for its owner, if it is linked and one is eligible. */
  async pushTo(terminalId: string): Promise<void> {
    try {
      const conn = this.hub.terminal(terminalId);
      const ads = conn ? await this.repo.ads() : [];
      if (!conn || ads.length === 0) return; // no inventory: nothing to look up
      const t = await this.repo.terminalById(terminalId);
      if (!t?.customerId) return;
      const ad = pickAd(ads, await this.segmentsOf(t.customerId), Date.now());
      if (!ad) return;
      conn.send({
        type: 'ad.push',
        adId: ad.adId,
        text: ad.text,
        mimeType: ad.mimeType,
        creativeUrl: `/ads/${ad.adId}`,
      });
    } catch (err) {
      log('warn', 'ad-push-failed', { terminalId, error: String(err) });
    }
  }

  /**
   * The pre-roll for an order (claims 14/20/26): an ad for the customer's segments, signed for this
   * order, unless the title has pre-rolls turned off or no ad fits. A missing creative file means no
   * pre-roll rather than no delivery.
   */
  async prerollFor(o: OrderRow): Promise<PrerollAttachment | undefined> {
    try {
      const ads = await this.repo.ads();
      if (ads.length === 0) return undefined;
      const item = await this.repo.catalogItem(o.itemNumber);
      if (item?.preroll === false) return undefined;
      const ad = pickAd(ads, await this.segmentsOf(o.customerId), Date.now());
      if (!ad) return undefined;
      const { creative, hash } = await this.creativeOf(ad);
      if (creative.length > LIMITS.maxCreativeBytes) return undefined;
      const envelope = signPreroll(
        this.serverSecretKey,
        { orderId: o.id, adId: ad.adId, text: ad.text, mimeType: ad.mimeType },
        creative,
        hash,
      );
      return { envelope, creative };
    } catch (err) {
      log('warn', 'preroll-unavailable', { orderId: o.id, error: String(err) });
      return undefined;
    }
  }

  /** Creatives are read and hashed once, not per order (a creative file never changes for its ad). */
  private readonly creatives = new Map<string, { creative: Uint8Array; hash: string }>();
  private async creativeOf(ad: AdRow): Promise<{ creative: Uint8Array; hash: string }> {
    const known = this.creatives.get(ad.adId);
    if (known) return known;
    const creative = new Uint8Array(await readFile(join(adCreativeDir(this.dataDir), ad.creativeFile)));
    const entry = { creative, hash: toB64(hashBytes(creative)) };
    if (this.creatives.size >= 32) this.creatives.delete(this.creatives.keys().next().value as string);
    this.creatives.set(ad.adId, entry);
    return entry;
  }

  /** A customer's latest classified segments, or their sign-up answers before any order. */
  private async segmentsOf(customerId: string): Promise<Partial<Classification>> {
    const customer = await this.repo.customerById(customerId);
    return {
      ...(customer?.ageBand ? { ageBand: customer.ageBand } : {}),
      ...(customer?.region ? { region: customer.region } : {}),
      ...(await this.repo.latestClassification(customerId)),
    };
  }
}
