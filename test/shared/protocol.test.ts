import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ClientMessage,
  CustomerMessage,
  decodeChunkFrame,
  encodeChunkFrame,
  PlaceOrder,
  ServerMessage,
  TerminalMessage,
} from '../../shared/protocol.ts';

const TID = '0123456789abcdef0123456789abcdef';

test('a valid order parses, and the e-mail in sign-up is normalised', () => {
  const ok = PlaceOrder.safeParse({
    type: 'order.place',
    id: 1,
    itemNumber: 101,
    terminalId: TID,
    periodSeconds: 3600,
    schedule: { mode: 'key-delivery', at: 1_800_000_000_000 },
  });
  assert.equal(ok.success, true);
  const reg = CustomerMessage.parse({
    type: 'auth.register',
    id: 2,
    email: '  Alice@Example.COM ',
    password: 'longenough',
    name: 'Alice',
  });
  assert.equal(reg.type === 'auth.register' && reg.email, 'alice@example.com');
});

test('wrong types, missing fields, extra fields and unknown types are rejected', () => {
  const bad: unknown[] = [
    {
      type: 'order.place',
      id: 1,
      itemNumber: '101',
      terminalId: TID,
      periodSeconds: 60,
      schedule: { mode: 'now' },
    },
    { type: 'order.place', id: 1, terminalId: TID, periodSeconds: 60, schedule: { mode: 'now' } },
    {
      type: 'order.place',
      id: 1,
      itemNumber: 1,
      terminalId: TID,
      periodSeconds: 60,
      schedule: { mode: 'now' },
      x: 1,
    },
    {
      type: 'order.place',
      id: 1,
      itemNumber: 1,
      terminalId: 'zz',
      periodSeconds: 60,
      schedule: { mode: 'now' },
    },
    {
      type: 'order.place',
      id: 1,
      itemNumber: 1,
      terminalId: TID,
      periodSeconds: 60,
      schedule: { mode: 'later' },
    },
    {
      type: 'order.place',
      id: -1,
      itemNumber: 1,
      terminalId: TID,
      periodSeconds: 60,
      schedule: { mode: 'now' },
    },
    { type: 'auth.register', id: 1, email: 'not-an-email', password: 'longenough', name: 'A' },
    { type: 'auth.register', id: 1, email: 'a@b.co', password: 'short', name: 'A' },
    { type: 'auth.register', id: 1, email: 'a@b.co', password: 'longenough', name: 'bell\u0007' },
    { type: 'terminal.link', id: 1, code: 'ABCD-1234', name: 'TV' }, // 1 is not in the code alphabet
    { type: 'nope', id: 1 },
    null,
    [],
    'order.place',
  ];
  for (const b of bad) assert.equal(ClientMessage.safeParse(b).success, false, JSON.stringify(b));
});

test('terminal messages and customer messages are separate sets', () => {
  assert.equal(
    TerminalMessage.safeParse({ type: 'licence.ack', orderId: crypto.randomUUID() }).success,
    true,
  );
  assert.equal(
    CustomerMessage.safeParse({ type: 'licence.ack', orderId: crypto.randomUUID() }).success,
    false,
  );
});

test('server messages are validated too', () => {
  assert.equal(ServerMessage.safeParse({ type: 'result', re: 1, value: {} }).success, true);
  assert.equal(
    ServerMessage.safeParse({ type: 'error', re: null, code: 'NOPE', message: '' }).success,
    false,
  );
});

test('chunk frames round-trip and garbage is refused', () => {
  const orderId = crypto.randomUUID();
  const cipher = new Uint8Array([1, 2, 3, 4, 5]);
  const frame = encodeChunkFrame(orderId, 4_000_000_000, cipher);
  const back = decodeChunkFrame(frame);
  assert.deepEqual(back && { ...back, cipher: [...back.cipher] }, {
    orderId,
    index: 4_000_000_000,
    cipher: [1, 2, 3, 4, 5],
  });
  assert.equal(decodeChunkFrame(new Uint8Array(10)), undefined);
  assert.equal(decodeChunkFrame(frame.subarray(0, 23)), undefined);
  // Every byte value in every place of the order's id comes back as the same lower-case text: id v
  // has every byte v; then ids whose bytes all differ.
  const allBytes = (v: number) => {
    const h = v.toString(16).padStart(2, '0').repeat(16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
  const ids = [
    ...Array.from({ length: 256 }, (_, v) => allBytes(v)),
    '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    ...Array.from({ length: 100 }, () => crypto.randomUUID()),
  ];
  for (const id of ids) assert.equal(decodeChunkFrame(encodeChunkFrame(id, 1, cipher))?.orderId, id);
});
