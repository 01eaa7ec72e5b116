import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChurnMap } from '../../shared/churn-map.ts';

test('ChurnMap: set, get, has, delete and size as a Map; values and keys in the order set; drain empties it', () => {
  const m = new ChurnMap<string, number>();
  assert.equal(m.size, 0);
  m.set('b-order', 1);
  m.set('a-order', 2);
  m.set('b-order', 3); // replacing does not count twice
  assert.equal(m.size, 2);
  assert.equal(m.get('b-order'), 3);
  assert.equal(m.has('a-order'), true);
  assert.equal(m.has('nope'), false);
  assert.equal(m.get('nope'), undefined);
  assert.deepEqual(m.keys(), ['b-order', 'a-order'], 'string keys in the order they were first set');
  assert.deepEqual(m.entries(), [
    ['b-order', 3],
    ['a-order', 2],
  ]);
  assert.equal(m.delete('b-order'), true);
  assert.equal(m.delete('b-order'), false, 'a second delete finds nothing');
  assert.equal(m.size, 1);
  // Keys that are also names on Object.prototype are plain keys here.
  m.set('constructor', 7);
  m.set('__proto__', 8);
  assert.equal(m.get('constructor'), 7);
  assert.equal(m.get('__proto__'), 8);
  assert.equal(m.has('toString'), false);
  assert.equal(m.size, 3);
  assert.deepEqual(m.drain().sort(), [2, 7, 8]);
  assert.equal(m.size, 0);
  assert.deepEqual(m.values(), []);

  const ids = new ChurnMap<number, string>();
  for (const id of [3, 1, 2]) ids.set(id, `licence ${id}`);
  assert.deepEqual(ids.values(), ['licence 3', 'licence 1', 'licence 2'], 'number keys in the order set');
  assert.deepEqual(ids.keys(), [3, 1, 2], 'keys keep their type');
  ids.delete(2);
  assert.deepEqual(ids.drain(), ['licence 3', 'licence 1']);
});

test('ChurnMap: replaced by a copy of itself as it ages, it keeps every entry and goes on working', async () => {
  const m = new ChurnMap<string, number>();
  for (let i = 0; i < 5; i++) m.set(`order-${i}`, i);
  m.delete('order-2');
  await new Promise((r) => setTimeout(r, 60)); // past the swap age: the next set copies
  m.set('order-5', 5);
  assert.equal(m.size, 5);
  assert.deepEqual(m.keys(), ['order-0', 'order-1', 'order-3', 'order-4', 'order-5']);
  assert.equal(m.get('order-3'), 3);
  assert.equal(m.delete('order-0'), true);
  assert.equal(m.has('order-0'), false);
  assert.equal(m.size, 4);
});

test('ChurnMap: a map that churns is copied as it ages; one holding many entries only after as many sets', (t) => {
  // The map behind it, read through a cast: whether a set copied it is not visible otherwise.
  const inner = (m: ChurnMap<string, number>) => (m as unknown as { map: Map<string, number> }).map;
  // The clock is the test's: a slow run does not age the maps between two steps.
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const age = () => t.mock.timers.tick(60); // past the swap age

  const churning = new ChurnMap<string, number>();
  for (let i = 0; i < 5; i++) churning.set(`order-${i}`, i);
  const young = inner(churning);
  age();
  churning.set('order-5', 5);
  assert.notEqual(inner(churning), young, 'six sets, five entries: copied');

  const holding = new ChurnMap<string, number>();
  for (let i = 0; i < 20_000; i++) holding.set(`order-${i}`, i);
  age();
  holding.set('new-0', 0);
  const held = inner(holding);
  age();
  for (let i = 1; i < 1000; i++) holding.set(`new-${i}`, i);
  assert.equal(
    inner(holding),
    held,
    'a thousand sets against 21,000 entries: no copy (it would cost milliseconds)',
  );
  for (let i = 1000; i < 21_000; i++) holding.set(`new-${i}`, i);
  assert.notEqual(inner(holding), held, 'as many sets as it held at the last copy: copied');
  assert.equal(holding.size, 41_000);
  assert.equal(holding.get('order-19999'), 19_999);
});
