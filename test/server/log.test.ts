/** Log lines: one JSON object per line, secret-looking fields redacted by name, quiet drops info. */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { log, setQuietLogs } from '../../server/log.ts';
import { capturedStderr } from '../stderr-capture.ts';

afterEach(() => setQuietLogs(false));

test('a line is one JSON object: time, level, event, then the fields; secrets by name are redacted', async () => {
  const odd = 'quote " backslash \\ newline \n tab \t é \u2028 \u0001';
  const { text } = await capturedStderr(() =>
    log('warn', 'order-placed', {
      orderId: 'o-1',
      count: 3,
      nested: { a: [1, 'b'] },
      note: odd,
      gone: undefined,
      token: 'tok-SECRET',
      password: 'pw-SECRET',
      signSecretKey: 'k-SECRET',
      pairingCode: 'c-SECRET',
      macOfBlock: 'm-SECRET',
    }),
  );
  assert.ok(text.endsWith('\n'));
  assert.equal(text.split('\n').length, 2, 'one line, whatever the fields hold');
  assert.doesNotMatch(text, /SECRET/);
  const line = JSON.parse(text) as Record<string, unknown>;
  assert.deepEqual(Object.keys(line), [
    't',
    'level',
    'event',
    'orderId',
    'count',
    'nested',
    'note',
    'token',
    'password',
    'signSecretKey',
    'pairingCode',
    'macOfBlock',
  ]);
  assert.ok(Math.abs(Date.parse(line.t as string) - Date.now()) < 60_000);
  assert.equal(line.t, new Date(Date.parse(line.t as string)).toISOString());
  assert.equal(line.level, 'warn');
  assert.equal(line.event, 'order-placed');
  assert.equal(line.orderId, 'o-1');
  assert.equal(line.count, 3);
  assert.deepEqual(line.nested, { a: [1, 'b'] });
  assert.equal(line.note, odd);
  for (const k of ['token', 'password', 'signSecretKey', 'pairingCode', 'macOfBlock']) {
    assert.equal(line[k], '[redacted]', k);
  }
});

test('lines of one turn leave in one write, in order; quiet drops info lines only', async () => {
  setQuietLogs(true);
  const { text, writes } = await capturedStderr(() => {
    log('info', 'dropped');
    log('warn', 'first', { n: 1 });
    log('error', 'second', { n: 2 });
  });
  assert.equal(writes, 1, 'the lines of one turn in one write');
  const lines = text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; level: string });
  assert.deepEqual(
    lines.map((l) => [l.level, l.event]),
    [
      ['warn', 'first'],
      ['error', 'second'],
    ],
  );
});
