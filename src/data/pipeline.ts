/**
 * The input pipeline for training and evaluation: cases are decoded and resized once (bilinear image,
 * nearest labels) and kept in memory compactly (./prepare.ts); every epoch shuffles them, augments
 * them deterministically under the seed, normalises the images and derives the targets, and hands out
 * batches as typed arrays that the training code turns into tensors.
 *
 * Batches are prepared ahead of the consumer: by default in a worker thread holding the cache, so
 * decoding and augmentation run while the training step runs, even when the step is a synchronous
 * native call that blocks the main thread. `worker: false` prepares them on the main thread instead
 * (still `prefetch` batches ahead, overlapping only with asynchronous work).
 *
 * Determinism: the epoch's order comes from Rng.from(seed, 'shuffle', epoch) and each sample's
 * augmentation from Rng.from(seed, 'augment', epoch, caseIndex), so batches are identical whatever
 * the thread, prefetch depth or timing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors';
import { Rng } from '../util/random';
import { AugmentConfig, DEFAULT_AUGMENT, IDENTITY_AUGMENT, isGeometricIdentity, jitterColour, sampleAugment, sourceMap, warpBilinear, warpNearest } from './augment';
import { CaseRecord, Dataset, MAX_STRUCTURES } from './dataset';
import type { Intensity } from './intensity';
import { Normalization, Normalizer } from './normalization';
import { CaseCache, PreparedImage, prepareImage } from './prepare';
import { AnnotatorLayout } from './layout';

export interface Batch {
  size: number;
  caseIds: string[];
  /** [B,C,S,S] normalised. */
  images: Float32Array;
  /** [B,K,S,S] per structure, number of available annotators marking the pixel (Eq. 2). */
  agreementCounts: Uint8Array;
  /** [B,K,S,S] agreementCounts / annotatorCount (0 for a case without annotations). */
  meanVotes: Float32Array;
  /** [B,M,K,S,S] 0/1; all zero for a missing annotation. */
  annotatorMasks: Uint8Array;
  /** [B,M] 1 when the annotator's annotation exists. */
  available: Uint8Array;
  /** [B] available annotators per case. */
  annotatorCount: Uint8Array;
}

export interface LoaderOptions {
  /** Side of the square model input (paper: 256). */
  size: number;
  batchSize: number;
  shuffle: boolean;
  /** true = DEFAULT_AUGMENT. */
  augment: boolean | AugmentConfig;
  seed: number;
  normalization: Normalization;
  /** Leave out a last, smaller batch. */
  dropLast: boolean;
  /** Batches prepared ahead of the consumer (default 2). */
  prefetch?: number;
  /** Prepare batches in a worker thread (default true). */
  worker?: boolean;
}

/** Makes batches from a case cache. Runs wherever the cache lives (worker thread or main thread). */
export class BatchProducer {
  readonly cache: CaseCache;
  private readonly normalizer: Normalizer;
  private readonly augment: AugmentConfig | null;

  constructor(private readonly ds: Dataset, private readonly cases: CaseRecord[], private readonly opts: LoaderOptions) {
    validateOptions(ds, cases, opts);
    this.cache = new CaseCache(ds, cases, opts.size);
    this.normalizer = new Normalizer(opts.normalization, ds.channels, opts.size);
    this.augment = opts.augment === true ? DEFAULT_AUGMENT : opts.augment === false ? null : opts.augment;
  }

  /** Case indices of every batch of an epoch. */
  plan(epoch: number): number[][] {
    const n = this.cases.length;
    const order = this.opts.shuffle ? Rng.from(this.opts.seed, 'shuffle', epoch).permutation(n) : Array.from({ length: n }, (_, i) => i);
    const batches: number[][] = [];
    for (let i = 0; i < n; i += this.opts.batchSize) {
      const b = order.slice(i, i + this.opts.batchSize);
      if (b.length < this.opts.batchSize && this.opts.dropLast) break;
      batches.push(b);
    }
    return batches;
  }

  async make(epoch: number, indices: number[]): Promise<Batch> {
    const prepared = await Promise.all(indices.map((i) => this.cache.get(i)));
    const B = indices.length;
    const S = this.opts.size;
    const SS = S * S;
    const C = this.ds.channels;
    const M = this.ds.annotators.length;
    const K = this.ds.structures.length;
    const layout = new AnnotatorLayout(M, K, SS);
    const batch: Batch = {
      size: B,
      caseIds: prepared.map((p) => p.id),
      images: new Float32Array(B * C * SS),
      agreementCounts: new Uint8Array(B * K * SS),
      meanVotes: new Float32Array(B * K * SS),
      annotatorMasks: new Uint8Array(B * M * K * SS),
      available: new Uint8Array(B * M),
      annotatorCount: new Uint8Array(B),
    };
    const img = new Float32Array(C * SS);
    const warped = new Uint8Array(M * SS);
    prepared.forEach((pc, j) => {
      const params = this.augment ? sampleAugment(Rng.from(this.opts.seed, 'augment', epoch, indices[j]), this.augment) : IDENTITY_AUGMENT;
      const { pixels, maxValue } = pc.image;
      let bits = pc.labels;
      if (isGeometricIdentity(params)) {
        const inv = 1 / maxValue;
        for (let i = 0; i < img.length; i++) img[i] = pixels[i] * inv;
      } else {
        const map = sourceMap(params, S);
        warpBilinear(pixels, C, S, map, 1 / maxValue, img);
        warpNearest(pc.labels, M, S, map, warped);
        bits = warped;
      }
      jitterColour(img, C, S, params);
      this.normalizer.apply(img, batch.images, j * C * SS);

      let annotators = 0;
      for (let m = 0; m < M; m++) {
        batch.available[layout.slot(j, m)] = pc.available[m];
        if (!pc.available[m]) continue; // its masks stay zero and it is not counted
        annotators++;
        // Pixel-major: most pixels are background (no bit set) and cost one read.
        for (let i = 0, src = m * SS; i < SS; i++, src++) {
          const b = bits[src];
          if (b === 0) continue;
          for (let k = 0; k < K; k++) {
            if ((b & (1 << k)) !== 0) {
              batch.annotatorMasks[layout.offset(j, m, k) + i] = 1;
              batch.agreementCounts[layout.structureOffset(j, k) + i]++;
            }
          }
        }
      }
      batch.annotatorCount[j] = annotators;
      if (annotators > 0) {
        const inv = 1 / annotators;
        for (let i = layout.structureOffset(j, 0); i < layout.structureOffset(j + 1, 0); i++) batch.meanVotes[i] = batch.agreementCounts[i] * inv;
      }
    });
    return batch;
  }
}

function validateOptions(ds: Dataset, cases: CaseRecord[], o: LoaderOptions): void {
  const posInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v <= 0) throw new UserError(`${name} must be a positive integer, got ${v}`);
  };
  posInt(o.size, 'size');
  posInt(o.batchSize, 'batch size');
  if (o.prefetch !== undefined) posInt(o.prefetch, 'prefetch');
  if (cases.length === 0) throw new UserError(`${ds.root}: no cases to load`);
  if (ds.structures.length > MAX_STRUCTURES) throw new UserError(`${ds.root}: ${ds.structures.length} structures; at most ${MAX_STRUCTURES} are supported`);
  if (ds.annotators.length > 255) throw new UserError(`${ds.root}: ${ds.annotators.length} annotators; at most 255 are supported`);
}

/** Messages between DataLoader and its worker (./loader-worker.ts). */
export type ToWorker =
  | { type: 'epoch'; token: number; epoch: number; credits: number }
  | { type: 'credit'; token: number }
  | { type: 'cancel'; token: number }
  | { type: 'close' };
export type FromWorker =
  | { type: 'batch'; token: number; batch: Batch; last: boolean }
  | { type: 'end'; token: number }
  | { type: 'error'; token: number; message: string; user: boolean; stack?: string };
export interface WorkerInit {
  dataset: Dataset;
  cases: CaseRecord[];
  options: LoaderOptions;
}

/** The buffers of a batch, to transfer (not copy) between threads. */
export function batchBuffers(b: Batch): ArrayBuffer[] {
  return [b.images, b.agreementCounts, b.meanVotes, b.annotatorMasks, b.available, b.annotatorCount].map((a) => a.buffer as ArrayBuffer);
}

const WORKER_FILE = path.join(__dirname, 'loader-worker.js');

/** One epoch requested from the worker, as the main thread tracks it. */
interface WorkerRun {
  token: number;
  epoch: number;
  ready: Batch[];
  ended: boolean;
  error: Error | null;
  wake: (() => void) | null;
}

/**
 * Batches for training or evaluation. `epoch(e)` yields the epoch's batches in order; call close()
 * when done (it ends the worker thread). One epoch at a time: leave (or break out of) the previous
 * `for await` before starting the next.
 */
export class DataLoader {
  readonly size: number;
  readonly batchSize: number;
  readonly channels: number;
  readonly annotators: string[];
  readonly structures: string[];
  /** Batches in every epoch. */
  readonly batchesPerEpoch: number;
  /** Cases it draws from. */
  readonly caseCount: number;
  private readonly producer: BatchProducer | null = null;
  private readonly worker: Worker | null = null;
  private readonly prefetch: number;
  private token = 0;
  private active = false;
  private closed = false;
  /** Worker runs by token: the epoch being iterated and, between epochs, the next one started early. */
  private readonly runs = new Map<number, WorkerRun>();
  private speculative: WorkerRun | null = null;
  private workerFailure: Error | null = null;
  private workerExited = false;

  constructor(ds: Dataset, cases: CaseRecord[], opts: LoaderOptions) {
    validateOptions(ds, cases, opts);
    new Normalizer(opts.normalization, ds.channels, opts.size); // fail here, not in the worker, on a mismatch
    this.size = opts.size;
    this.batchSize = opts.batchSize;
    this.channels = ds.channels;
    this.annotators = [...ds.annotators];
    this.structures = ds.structures.map((s) => s.name);
    this.prefetch = opts.prefetch ?? 2;
    const n = cases.length;
    this.caseCount = n;
    this.batchesPerEpoch = opts.dropLast ? Math.floor(n / opts.batchSize) : Math.ceil(n / opts.batchSize);
    // The compiled worker file is absent when this module runs from TypeScript sources (ts-node and
    // the like); the main-thread producer gives identical batches.
    if ((opts.worker ?? true) && fs.existsSync(WORKER_FILE)) {
      const init: WorkerInit = { dataset: ds, cases, options: opts };
      this.worker = new Worker(WORKER_FILE, { workerData: init });
      this.worker.unref(); // only an active epoch keeps the process alive
      this.worker.on('message', (msg: FromWorker) => this.onMessage(msg));
      this.worker.on('error', (err) => this.fail(err));
      this.worker.on('exit', (code) => {
        this.workerExited = true;
        if (!this.closed) this.fail(new Error(`data loader worker exited unexpectedly (code ${code})`));
      });
    } else {
      this.producer = new BatchProducer(ds, cases, opts);
    }
  }

  private onMessage(msg: FromWorker): void {
    const run = this.runs.get(msg.token);
    if (!run) return; // a cancelled run's late message
    if (msg.type === 'batch') {
      run.ready.push(msg.batch);
      if (msg.last) run.ended = true; // with the batch itself, so the consumer knows it took the last one
    } else if (msg.type === 'end') run.ended = true;
    else run.error = msg.user ? new UserError(msg.message) : Object.assign(new Error(msg.message), { stack: msg.stack ?? msg.message });
    run.wake?.();
  }

  private fail(err: Error): void {
    this.workerFailure = err;
    for (const run of this.runs.values()) {
      run.error ??= err;
      run.wake?.();
    }
  }

  /** Asks the worker for an epoch's batches, `prefetch` ahead. */
  private startRun(epoch: number): WorkerRun {
    const run: WorkerRun = { token: ++this.token, epoch, ready: [], ended: false, error: null, wake: null };
    this.runs.set(run.token, run);
    this.worker!.postMessage({ type: 'epoch', token: run.token, epoch, credits: this.prefetch } satisfies ToWorker);
    return run;
  }

  private cancelRun(run: WorkerRun): void {
    this.runs.delete(run.token);
    if (!this.closed && !this.workerFailure) this.worker!.postMessage({ type: 'cancel', token: run.token } satisfies ToWorker);
  }

  epoch(epochIndex: number): AsyncIterable<Batch> {
    if (this.closed) throw new Error('DataLoader.epoch: the loader is closed');
    if (this.active) throw new Error('DataLoader.epoch: the previous epoch is still being iterated; finish or break out of it first');
    return this.worker ? this.workerEpoch(epochIndex) : this.localEpoch(epochIndex);
  }

  private async *localEpoch(epoch: number): AsyncGenerator<Batch> {
    const producer = this.producer!;
    const plan = producer.plan(epoch);
    this.active = true;
    const pending: Promise<Batch>[] = [];
    // Each batch is chained after the previous one so batches are built one at a time, in order.
    let tail: Promise<unknown> = Promise.resolve();
    const start = (i: number) => {
      const p = tail.then(() => producer.make(epoch, plan[i]));
      tail = p.catch(() => undefined);
      pending.push(p);
    };
    try {
      let started = 0;
      for (; started < Math.min(this.prefetch, plan.length); started++) start(started);
      for (let i = 0; i < plan.length; i++) {
        const batch = await pending.shift()!;
        if (started < plan.length) start(started++);
        yield batch;
      }
    } finally {
      this.active = false;
      for (const p of pending) p.catch(() => undefined); // abandoned on break: no unhandled rejection
    }
  }

  private async *workerEpoch(epoch: number): AsyncGenerator<Batch> {
    const worker = this.worker!;
    if (this.workerFailure) throw this.workerFailure;
    // The previous epoch ended by starting this one early (the usual e, e+1, ... loop); adopt it.
    let run = this.speculative;
    this.speculative = null;
    if (run && run.epoch !== epoch) {
      this.cancelRun(run);
      run = null;
    }
    run ??= this.startRun(epoch);
    this.active = true;
    worker.ref();
    let finished = false;
    try {
      for (;;) {
        while (run.ready.length === 0 && !run.ended && !run.error) await new Promise<void>((r) => (run!.wake = r));
        run.wake = null;
        if (run.error) throw run.error;
        if (run.ready.length === 0 && run.ended) break; // only for an epoch with no batches
        const batch = run.ready.shift()!;
        if (run.ended && run.ready.length === 0) {
          // Last batch handed out: start the next epoch now, so it is prepared during this last step.
          this.runs.delete(run.token);
          if (!this.closed && !this.workerFailure && !this.speculative) this.speculative = this.startRun(epoch + 1);
        } else {
          worker.postMessage({ type: 'credit', token: run.token } satisfies ToWorker);
        }
        yield batch;
      }
      finished = true;
    } finally {
      this.active = false;
      if (!finished) this.cancelRun(run);
      worker.unref();
    }
  }

  /** Ends the worker thread after its in-flight work (an image decode must not be cut off). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (!worker || this.workerExited) return;
    await new Promise<void>((resolve) => {
      worker.once('exit', () => resolve());
      worker.ref();
      worker.postMessage({ type: 'close' } satisfies ToWorker);
    });
  }
}

/**
 * Prepares one image file for a model exactly as training prepared its images (same resize, same
 * rounding, same normalisation, same NIfTI intensity rules): returns a [1,C,S,S] input and the original size, to map predictions
 * back. Throws a UserError naming the file when it is missing or cannot be decoded.
 */
export async function loadImageForModel(file: string, size: number, normalization: Normalization, channels: number, intensity?: Intensity): Promise<{ input: Float32Array; originalWidth: number; originalHeight: number }> {
  return inputForModel(await prepareImage(file, size, channels, intensity), normalization);
}

/** A prepared image (./prepare.ts) normalised as training normalised it: a [1,C,S,S] input. */
export function inputForModel(img: PreparedImage, normalization: Normalization): { input: Float32Array; originalWidth: number; originalHeight: number } {
  const normalizer = new Normalizer(normalization, img.channels, img.size);
  const f = new Float32Array(img.pixels.length);
  const inv = 1 / img.maxValue;
  for (let i = 0; i < f.length; i++) f[i] = img.pixels[i] * inv;
  const input = new Float32Array(f.length);
  normalizer.apply(f, input);
  return { input, originalWidth: img.originalWidth, originalHeight: img.originalHeight };
}
