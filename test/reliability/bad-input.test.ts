/** `npm run test:fuzz` runs this alone; it is also part of `npm test`. */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { cleanup } from '../harness.ts';
import { runBadInput } from './bad-input.ts';

afterEach(cleanup);

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);

test(`${RUNS} generated bad messages: typed errors or clean closes, no crash, nothing corrupted`, async () => {
  const r = await runBadInput(RUNS);
  process.stdout.write(
    `bad input: ${r.typedErrors} typed errors, ${r.results} accepted as valid, ${r.cleanCloses} clean closes\n` +
      `cases: ${r.cases}, crashes: ${r.crashes}, corrupted: ${r.corrupted}\n`,
  );
  assert.deepEqual(r.problems.slice(0, 10), []);
  assert.equal(r.cases, RUNS);
  assert.equal(r.crashes, 0);
  assert.equal(r.corrupted, 0);
  assert.equal(r.typedErrors + r.results + r.cleanCloses, r.cases);
});
