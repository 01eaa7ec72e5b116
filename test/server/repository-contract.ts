/**
 * What every storage engine must do, run against SQLite (`repository-sqlite.test.ts`) and
 * PostgreSQL (`test/pg/repository-pg.test.ts`): the same assertions, so the engines cannot drift.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import {
  INSTANCE_LIVE_MS,
  type JobRow,
  type OrderRow,
  type Repository,
} from '../../server/store/repository.ts';
import type { Classification } from '../../shared/classification.ts';

export interface Engine {
  /** A new, empty store; `again` opens a second handle on the same one (another instance). */
  open(): Promise<{ repo: Repository; again: () => Promise<Repository> }>;
}

export const CLASSIFIED: Classification = {
  genre: 'drama',
  ageBand: '35-44',
  region: 'north',
  dayPart: 'evening',
  lengthBand: 'under-1-day',
  terminalType: 'headless',
};

/** A customer, a title and a linked terminal: what an order needs. */
export async function seed(repo: Repository) {
  const customerId = randomUUID();
  await repo.createCustomer({
    id: customerId,
    email: `${customerId}@example.com`,
    name: 'C',
    passwordHash: 'x',
    createdAt: 1,
    ageBand: null,
    region: null,
    role: 'customer',
  });
  await repo.upsertCatalogItem({
    itemNumber: 7,
    title: 'T',
    genre: 'Drama',
    year: 2020,
    synopsis: '',
    durationSeconds: 10,
    priceCents: 100,
    posterFile: null,
    mediaFile: 'm.webm',
    mimeType: 'video/webm',
    size: 1000,
    sha256: 'h',
    createdAt: 1,
  });
  const terminalId = randomUUID();
  await repo.upsertTerminal({
    id: terminalId,
    signPublicKey: new Uint8Array(32).fill(1),
    kind: 'headless',
    name: 'Box',
    createdAt: 1,
  });
  await repo.linkTerminal(terminalId, customerId, 'Box', 2);
  return { customerId, terminalId };
}

/** An order row and its three jobs, as Orders stores them. */
export function order(customerId: string, terminalId: string, at: number): { o: OrderRow; jobs: JobRow[] } {
  const id = randomUUID();
  const o: OrderRow = {
    id,
    customerId,
    itemNumber: 7,
    terminalId,
    periodSeconds: 60,
    contentAt: at,
    keyAt: at,
    notBefore: at,
    notAfter: at + 60_000,
    wrappedKey: new Uint8Array([1, 2, 3]),
    contentState: 'scheduled',
    keyState: 'scheduled',
    chunksDelivered: 0,
    totalChunks: 1,
    size: 1000,
    chunkSize: 65536,
    priceCents: 100,
    createdAt: at,
  };
  const jobs: JobRow[] = (['content', 'key', 'expire'] as const).map((kind) => ({
    orderId: id,
    kind,
    runAt: kind === 'expire' ? at + 60_000 : at,
    terminalId,
  }));
  return { o, jobs };
}

/** An order as `createOrder` takes it. */
const placed = ({ o, jobs }: { o: OrderRow; jobs: JobRow[] }) => [o, jobs, CLASSIFIED] as const;

/** A new store with two customers, each with a linked terminal. */
async function twoCustomers(engine: Engine) {
  const { repo } = await engine.open();
  return { repo, a: await seed(repo), b: await seed(repo), now: Date.now() };
}

export function repositoryContract(name: string, engine: Engine, skip: string | false = false) {
  test(`${name}: accounts, roles, sessions; an e-mail is taken once`, { skip }, async () => {
    const { repo } = await engine.open();
    const { customerId } = await seed(repo);
    const c = await repo.customerById(customerId);
    assert.equal(c?.role, 'customer');
    assert.equal(
      await repo.createCustomer({ ...(c as NonNullable<typeof c>), id: randomUUID() }),
      false,
      'the same e-mail again is refused',
    );
    assert.equal(await repo.setCustomerRole(c?.email as string, 'admin'), true);
    assert.equal((await repo.customerByEmail(c?.email as string))?.role, 'admin');
    assert.equal(await repo.setCustomerRole('nobody@example.com', 'admin'), false);
    await repo.createSession('h1', customerId, 10, Date.now() + 60_000);
    assert.equal(await repo.sessionCustomer('h1', Date.now()), customerId);
    await repo.revokeSession('h1', Date.now());
    assert.equal(await repo.sessionCustomer('h1', Date.now()), undefined);
    await repo.close();
  });

  test(`${name}: a pairing code is taken once; presence follows live instances only`, { skip }, async () => {
    const { repo } = await engine.open();
    const { terminalId } = await seed(repo);
    await repo.setPairingCode(terminalId, 'ABCDEFGH', Date.now() + 60_000);
    const [a, b] = await Promise.all([
      repo.takePairingCode('ABCDEFGH', Date.now()),
      repo.takePairingCode('ABCDEFGH', Date.now()),
    ]);
    assert.deepEqual([a, b].filter(Boolean), [terminalId]);
    const now = Date.now();
    assert.equal((await repo.terminalById(terminalId))?.online, false);
    await repo.beat('inst-a', 'all', now);
    await repo.setPresence(terminalId, 'inst-a', true, now);
    assert.equal((await repo.terminalById(terminalId))?.online, true);
    // Another instance closing its (older) connection does not erase this one's.
    await repo.setPresence(terminalId, 'inst-b', false, now);
    assert.equal((await repo.terminalById(terminalId))?.online, true);
    // An instance that stopped beating holds nothing.
    await repo.beat('inst-a', 'all', now - INSTANCE_LIVE_MS - 1000);
    assert.equal((await repo.terminalById(terminalId))?.online, false);
    await repo.close();
  });

  test(`${name}: jobs are taken once, left to the instance holding the terminal, and recovered from a dead one`, {
    skip,
  }, async () => {
    const { repo, again } = await engine.open();
    const other = await again();
    const { customerId, terminalId } = await seed(repo);
    const now = Date.now();
    const orders = Array.from({ length: 12 }, (_, i) => order(customerId, terminalId, now - 1000 + i));
    for (const { o, jobs } of orders) await repo.createOrder(o, jobs, CLASSIFIED);
    assert.equal((await repo.classifications(0)).length, 12);
    assert.deepEqual(await repo.latestClassification(customerId), CLASSIFIED);
    // The customer's view reads each order with its title's and terminal's names.
    const named = await repo.namedOrder(orders[0]?.o.id as string);
    assert.deepEqual(
      { id: named?.id, title: named?.title, terminalName: named?.terminalName },
      { id: orders[0]?.o.id, title: 'T', terminalName: 'Box' },
    );
    const listed = await repo.ordersOfCustomer(customerId);
    assert.equal(listed.length, 12);
    assert.deepEqual(
      listed.map((o) => o.id),
      orders.map(({ o }) => o.id).reverse(),
      'newest first',
    );
    assert.ok(listed.every((o) => o.title === 'T' && o.terminalName === 'Box'));
    assert.equal(await repo.namedOrder('00000000-0000-0000-0000-000000000000'), undefined);

    // The terminal is connected to live instance B: A takes none of its content or key jobs.
    await repo.beat('inst-a', 'all', now);
    await repo.beat('inst-b', 'all', now);
    await repo.setPresence(terminalId, 'inst-b', true, now);
    assert.deepEqual(await repo.dueJobs(now, 100, 'inst-a', false), []);
    // Two instances asking at once (B twice, on two handles) never get the same job.
    const [x, y] = await Promise.all([
      repo.dueJobs(now, 100, 'inst-b', false),
      other.dueJobs(now, 100, 'inst-b', false),
    ]);
    const taken = [...x, ...y].map((j) => `${j.orderId}/${j.kind}`);
    assert.equal(taken.length, 24, 'every due content and key job, once');
    assert.equal(new Set(taken).size, 24);
    assert.deepEqual(await repo.dueJobs(now, 100, 'inst-b', false), [], 'nothing is taken twice');
    // Expiry is anyone's.
    const later = now + 61_000;
    await repo.beat('inst-a', 'all', later);
    assert.equal(
      (await repo.dueJobs(later, 100, 'inst-a', false)).filter((j) => j.kind === 'expire').length,
      12,
    );

    // B dies with its jobs in hand (its last beat is long ago): they go back to the queue, and the
    // terminal is nobody's. A's own jobs stay A's.
    await repo.beat('inst-b', 'all', now - INSTANCE_LIVE_MS - 1000);
    assert.equal(await repo.recoverJobs(now), 24);
    assert.equal((await repo.terminalById(terminalId))?.online, false);
    assert.equal((await repo.dueJobs(later, 100, 'inst-a', false)).length, 24);
    await other.close();
    await repo.close();
  });

  test(`${name}: a terminal that connects wakes its jobs in hand or parked, not others'`, {
    skip,
  }, async () => {
    const { repo, a, b, now } = await twoCustomers(engine);
    const ofA = order(a.customerId, a.terminalId, now - 1000);
    const ofB = order(b.customerId, b.terminalId, now - 1000);
    await repo.createOrder(...placed(ofA));
    await repo.createOrder(...placed(ofB));
    await repo.beat('inst-a', 'all', now);
    // Both orders' content and key jobs in hand; A's content then waits (parked) for its terminal.
    assert.equal((await repo.dueJobs(now, 100, 'inst-a', false)).length, 4);
    await repo.setJobState(ofA.o.id, 'content', 'parked');
    assert.equal(await repo.wakeTerminalJobs(a.terminalId), 2, "A's parked and claimed jobs");
    const due = (await repo.dueJobs(now, 100, 'inst-a', false)).map((j) => `${j.orderId}/${j.kind}`);
    assert.deepEqual(due.sort(), [`${ofA.o.id}/content`, `${ofA.o.id}/key`].sort());
    assert.equal(await repo.wakeTerminalJobs(b.terminalId), 2, "B's jobs, still in hand");
    assert.equal(await repo.wakeTerminalJobs(b.terminalId), 0, 'pending jobs are not counted');
    await repo.close();
  });

  test(`${name}: a customer's latest classification is their newest order's, whoever ordered since`, {
    skip,
  }, async () => {
    const { repo, a, b, now } = await twoCustomers(engine);
    const older: Classification = { ...CLASSIFIED, genre: 'comedy' };
    await repo.createOrder(order(a.customerId, a.terminalId, now - 5_000).o, [], older);
    const newest: Classification = { ...CLASSIFIED, dayPart: 'morning' };
    await repo.createOrder(order(a.customerId, a.terminalId, now - 4_000).o, [], newest);
    for (let i = 0; i < 5; i++)
      await repo.createOrder(order(b.customerId, b.terminalId, now - 3_000 + i).o, [], CLASSIFIED);
    assert.equal((await repo.latestClassification(a.customerId))?.dayPart, 'morning');
    assert.equal((await repo.latestClassification(a.customerId))?.genre, 'drama');
    assert.equal(await repo.latestClassification(randomUUID()), undefined);
    await repo.close();
  });

  test(`${name}: the rate limit counts a customer's orders since a time, as they are written`, {
    skip,
  }, async () => {
    const { repo } = await engine.open();
    const { customerId, terminalId } = await seed(repo);
    const other = await seed(repo);
    const now = Date.now();
    for (const at of [now - 90_000, now - 30_000, now - 10_000])
      await repo.createOrder(...placed(order(customerId, terminalId, at)));
    await repo.createOrder(...placed(order(other.customerId, other.terminalId, now - 5_000)));
    assert.equal(await repo.countRecentOrders(customerId, now - 60_000), 2);
    // Written after the first count: counted too, the others' not.
    await repo.createOrder(...placed(order(customerId, terminalId, now)));
    assert.equal(await repo.countRecentOrders(customerId, now - 60_000), 3);
    assert.equal(await repo.countRecentOrders(other.customerId, now - 60_000), 1);
    // The window moves on, and back.
    assert.equal(await repo.countRecentOrders(customerId, now - 20_000), 2);
    assert.equal(await repo.countRecentOrders(customerId, now - 100_000), 4);
    assert.equal(await repo.countRecentOrders(customerId, now + 1), 0);
    await repo.close();
  });

  test(`${name}: a licence is stored once; impressions count once; data survives reopening`, {
    skip,
  }, async () => {
    const { repo, again } = await engine.open();
    const { customerId, terminalId } = await seed(repo);
    const { o, jobs } = order(customerId, terminalId, Date.now());
    await repo.createOrder(o, jobs, CLASSIFIED);
    assert.deepEqual(await repo.saveLicence(o.id, { data: 'first', sig: 's1' }, 1), {
      data: 'first',
      sig: 's1',
    });
    assert.deepEqual(
      await repo.saveLicence(o.id, { data: 'second', sig: 's2' }, 2),
      { data: 'first', sig: 's1' },
      'the one stored first is the one to send',
    );
    assert.deepEqual(await repo.licenceOf(o.id), { data: 'first', sig: 's1' });
    // An order whose licence another handle (another instance) stored first: that one is sent.
    const { o: o2, jobs: jobs2 } = order(customerId, terminalId, Date.now());
    await repo.createOrder(o2, jobs2, CLASSIFIED);
    assert.equal(await repo.licenceOf(o2.id), undefined, 'no licence yet');
    const other = await again();
    await other.saveLicence(o2.id, { data: 'elsewhere', sig: 's3' }, 3);
    await other.close();
    assert.deepEqual(await repo.saveLicence(o2.id, { data: 'here', sig: 's4' }, 4), {
      data: 'elsewhere',
      sig: 's3',
    });
    assert.deepEqual(await repo.licenceOf(o2.id), { data: 'elsewhere', sig: 's3' });
    // Ads read before one is added or removed (an engine may keep the list) show the change at once.
    assert.deepEqual(await repo.ads(), []);
    const adId = randomUUID();
    await repo.addAd({
      adId,
      text: 'Ad',
      creativeFile: 'a.jpg',
      mimeType: 'image/jpeg',
      segments: { genre: ['drama'] },
      startsAt: 0,
      endsAt: Date.now() + 60_000,
      weight: 2,
      createdAt: 1,
    });
    const impression = { impressionId: randomUUID(), adId, terminalId, shownAt: 5, completed: true };
    assert.equal(await repo.recordImpression(impression), true);
    assert.equal(await repo.recordImpression(impression), false);
    assert.deepEqual(await repo.impressionCounts(), [{ adId, shown: 1, completed: 1 }]);
    assert.deepEqual(
      (await repo.ads()).map((a) => a.adId),
      [adId],
    );
    assert.equal((await repo.impressionRows(0))[0]?.terminalType, 'headless');
    assert.equal(await repo.setCatalogPreroll(7, false), true);
    // A late progress report does not undo a delivery.
    await repo.setContentProgress(o.id, 'delivered', 1);
    await repo.setContentProgress(o.id, 'delivering', 1);
    assert.equal((await repo.orderById(o.id))?.contentState, 'delivered');
    // What is read back is what was written, however the engine keeps it; a copy the caller
    // changes does not change the store.
    await repo.setKeyState(o.id, 'delivered');
    const read = (await repo.orderById(o.id)) as NonNullable<Awaited<ReturnType<typeof repo.orderById>>>;
    assert.deepEqual([read.keyState, read.chunksDelivered], ['delivered', 1]);
    read.keyState = 'scheduled';
    assert.equal((await repo.orderById(o.id))?.keyState, 'delivered');
    await repo.renameTerminal(terminalId, 'Den');
    assert.equal((await repo.namedOrder(o.id))?.terminalName, 'Den');
    await repo.close();
    // Reopened (migrations run again, as on every start): everything is still there.
    const reopened = await again();
    assert.equal((await reopened.orderById(o.id))?.wrappedKey?.length, 3);
    assert.deepEqual(
      [(await reopened.orderById(o.id))?.contentState, (await reopened.orderById(o.id))?.keyState],
      ['delivered', 'delivered'],
    );
    await reopened.wipeOrderKey(o.id);
    assert.equal((await reopened.orderById(o.id))?.wrappedKey, null);
    assert.deepEqual((await reopened.ads())[0]?.segments, { genre: ['drama'] });
    assert.equal((await reopened.catalogItem(7))?.preroll, false);
    assert.equal((await reopened.pendingJobs()).length, 6, 'three jobs for each of the two orders');
    assert.equal(await reopened.removeAd(adId, Date.now()), true);
    assert.deepEqual(await reopened.ads(), []);
    assert.equal((await reopened.ads(true)).length, 1);
    await reopened.close();
  });
}
