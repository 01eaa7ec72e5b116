/**
 * Licences are sealed and signed on a worker thread. A licence costs two scalar multiplications (the
 * sealed box) and a signature: 19 % of the server's event loop in the orders benchmark, where the
 * event loop is what limits how many orders one instance takes a second. On the worker, that work
 * runs beside the event loop; licences issued in one turn go over in one message each way.
 *
 * The bytes are nativeIssueLicence's (tests check): the licence's JSON is built here with an empty
 * sealedKey, which is its last field, and the worker puts the sealed key between the quotes before
 * it signs. Without sodium-native, or once the worker has died, licences are issued on the event
 * loop as before.
 */
import type { Worker } from 'node:worker_threads';
import { ChurnMap } from '../shared/churn-map.ts';
import { type SignedEnvelope, signedBytes } from '../shared/crypto.ts';
import { type LicenceFields, licenceBody } from '../shared/licence.ts';
import { log } from './log.ts';
import { nativeIssueLicence, sodiumWorker, terminalKeys } from './native-sodium.ts';

// Plain JavaScript, evaluated in the worker: it needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const sn = require(workerData.sodium);
const prefix = Buffer.from(workerData.prefix);
const secretKey = Buffer.from(workerData.secretKey);
parentPort.on('message', (batch) => {
  const out = [];
  for (const r of batch) {
    const key = Buffer.from(r.key);
    const sealed = Buffer.allocUnsafe(sn.crypto_box_SEALBYTES + key.length);
    sn.crypto_box_seal(sealed, key, Buffer.from(r.boxPk));
    key.fill(0);
    const bytes = Buffer.from(r.head + sealed.toString('base64url') + '"}');
    const sig = Buffer.allocUnsafe(sn.crypto_sign_BYTES);
    sn.crypto_sign_detached(sig, Buffer.concat([prefix, bytes]), secretKey);
    out.push({ id: r.id, data: bytes.toString('base64url'), sig: sig.toString('base64url') });
  }
  parentPort.postMessage(out);
});
`;

interface Request {
  id: number;
  /** The licence's JSON up to the sealed key's opening quote. */
  head: string;
  key: Uint8Array;
  boxPk: Uint8Array;
}
/** A licence on the thread, with what it takes to issue it on the event loop if the thread dies first. */
interface Waiting {
  resolve: (l: SignedEnvelope) => void;
  fields: LicenceFields;
  contentKey: Uint8Array;
  terminalSignPublicKey: Uint8Array;
}

export class LicenceSigner {
  private worker: Worker | undefined;
  /** The worker died or could not start: licences are issued on the event loop from then on. */
  private failed = false;
  private nextId = 0;
  private queued: Request[] = [];
  /** Licences on the thread, by request id (a ChurnMap: a licence waits milliseconds). */
  private readonly waiting = new ChurnMap<number, Waiting>();

  constructor(private readonly signSecretKey: Uint8Array) {}

  /** The licence for `fields`, with `contentKey` sealed to the terminal whose signing key is given. */
  issue(
    fields: LicenceFields,
    contentKey: Uint8Array,
    terminalSignPublicKey: Uint8Array,
  ): Promise<SignedEnvelope> {
    const worker = this.theWorker();
    if (!worker)
      return Promise.resolve(
        nativeIssueLicence(this.signSecretKey, fields, contentKey, terminalSignPublicKey),
      );
    const { boxPk, terminalId } = terminalKeys(terminalSignPublicKey);
    const json = JSON.stringify(licenceBody(fields, terminalId, ''));
    // Copies of exactly their bytes: a message carries a view's whole buffer, and a small Buffer is
    // often a view of Node's shared 8 KiB pool (other keys among what else is in it).
    const request = {
      id: this.nextId++,
      head: json.slice(0, -2),
      key: new Uint8Array(contentKey),
      boxPk: new Uint8Array(boxPk),
    };
    if (this.queued.length === 0) setImmediate(() => this.post());
    this.queued.push(request);
    // No closure per licence: under tsx each named one costs a defineProperty (see BENCHMARKS.md).
    return new Promise((resolve) =>
      this.waiting.set(request.id, { resolve, fields, contentKey, terminalSignPublicKey }),
    );
  }

  /** The worker ends; licences asked for meanwhile are issued on the event loop. */
  async close(): Promise<void> {
    this.failed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
    this.issueHere();
  }

  private post(): void {
    const batch = this.queued;
    this.queued = [];
    if (!this.worker) {
      this.issueHere();
      return;
    }
    this.worker.ref(); // held while licences are on it
    this.worker.postMessage(batch);
  }

  private theWorker(): Worker | undefined {
    if (this.worker || this.failed) return this.worker;
    const worker = sodiumWorker<{ id: number; data: string; sig: string }[]>(
      WORKER_SOURCE,
      { prefix: signedBytes('licence', new Uint8Array(0)), secretKey: this.signSecretKey },
      (replies) => {
        for (const r of replies) {
          const w = this.waiting.get(r.id);
          this.waiting.delete(r.id);
          w?.resolve({ data: r.data, sig: r.sig });
        }
        if (this.waiting.size === 0) worker?.unref();
      },
      (why) => {
        if (this.worker !== worker) return; // closed: not a death
        log('error', 'licence-signer-died', { error: why });
        this.failed = true;
        this.worker = undefined;
        this.issueHere();
      },
    );
    if (!worker) this.failed = true;
    this.worker = worker;
    return worker;
  }

  /** Everything asked for and not answered, issued on the event loop. */
  private issueHere(): void {
    this.queued = [];
    for (const w of this.waiting.drain())
      w.resolve(nativeIssueLicence(this.signSecretKey, w.fields, w.contentKey, w.terminalSignPublicKey));
  }
}
