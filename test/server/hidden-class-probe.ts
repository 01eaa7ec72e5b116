/**
 * Run by hidden-classes.test.ts under `--allow-natives-syntax`: whether objects the order path makes
 * for every order share one hidden class (V8 map). Prints one line of JSON.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobOf } from '../../server/key/orders.ts';
import { SqliteRepository } from '../../server/store/sqlite.ts';
import { CLASSIFIED, order, seed } from './repository-contract.ts';

const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
/**
 * Whether the last ten objects share one map. Not the first ones: V8's object-spread cache gives them
 * one map until it is warm (after about eight), and a class per object only from then on.
 */
const oneClass = (objects: object[]) => {
  const last = objects.slice(-10);
  return last.every((o) => sameMap(last[0] as object, o));
};

const dir = mkdtempSync(join(tmpdir(), 'rental-maps-'));
try {
  const repo = new SqliteRepository(join(dir, 'rental.sqlite'));
  const { customerId, terminalId } = await seed(repo);
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) {
    const { o, jobs } = order(customerId, terminalId, Date.now() + i);
    await repo.createOrder(o, jobs, CLASSIFIED);
    ids.push(o.id);
  }
  const named = await Promise.all(ids.map((id) => repo.namedOrder(id)));
  const rows = await Promise.all(ids.map((id) => repo.orderById(id)));
  const claimed = rows.map((o) => jobOf(o as NonNullable<typeof o>, 'content', 0, 'instance-1'));
  // The pattern these replaced, for comparison: does this V8 make a class per object for it?
  const spreadThenAdd = rows.map((o) => ({ ...o, title: 'T', terminalName: 'Box' }));
  console.log(
    JSON.stringify({
      named: oneClass(named as object[]),
      claimedJobs: oneClass(claimed),
      spreadThenAdd: oneClass(spreadThenAdd),
    }),
  );
  await repo.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
