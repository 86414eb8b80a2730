/**
 * Input-pipeline benchmark: preparing a batch of 8 at 256² must take under 10% of a
 * training step (~2 s on this machine).
 *
 *  1. writes a synthetic dataset (64 cases, 256², 6 annotators) to a temp folder;
 *  2. measures batch preparation on the main thread, first epoch (decode + resize + augment) and later
 *     epochs (augment only, from the in-memory cache) — the cost a step would pay if nothing overlapped;
 *  3. runs the worker-thread loader against a simulated synchronous training step and measures how long
 *     the consumer waits for each batch (should be ~0: preparation overlaps the step).
 *
 * Prints figures, then one JSON object as the last line. AVAP_BENCH_STEP_MS sets the simulated step
 * (default 500 ms; shorter than 2 s to keep the bench quick — the overlap only gets easier with longer steps).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDataset } from '../src/data/dataset';
import { computeNormalization } from '../src/data/normalization';
import { BatchProducer, DataLoader, LoaderOptions } from '../src/data/pipeline';
import { writeSynthDataset } from '../src/data/synth';

const STEP_MS_REFERENCE = 2000;
const SIZE = 256;
const BATCH = 8;
const CASES = 64;

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* a synchronous native training step blocks the thread like this */ }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const stepMs = Number(process.env.AVAP_BENCH_STEP_MS ?? 500);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-bench-data-'));
  try {
    let t = performance.now();
    await writeSynthDataset({ out: path.join(dir, 'synth'), cases: CASES, size: SIZE, annotators: 6, seed: 0 });
    const synthMs = performance.now() - t;
    console.log(`synth: ${CASES} cases at ${SIZE}² in ${round(synthMs / 1000, 2)} s (${round(synthMs / CASES)} ms/case)`);

    const ds = await openDataset(path.join(dir, 'synth'));
    t = performance.now();
    const normalization = await computeNormalization(ds, ds.cases, SIZE);
    console.log(`per-pixel normalization over ${ds.cases.length} cases: ${round(performance.now() - t)} ms`);

    const opts: LoaderOptions = { size: SIZE, batchSize: BATCH, shuffle: true, augment: true, seed: 0, normalization, dropLast: true };
    const producer = new BatchProducer(ds, ds.cases, opts);
    const timeEpoch = async (epoch: number) => {
      const times: number[] = [];
      for (const b of producer.plan(epoch)) {
        const t0 = performance.now();
        await producer.make(epoch, b);
        times.push(performance.now() - t0);
      }
      return times;
    };
    const cold = await timeEpoch(0);
    const warm = [...(await timeEpoch(1)), ...(await timeEpoch(2))];
    const coldMs = mean(cold);
    const warmMs = mean(warm);
    const perCaseKb = producer.cache.bytes / ds.cases.length / 1024;
    console.log(`batch of ${BATCH} at ${SIZE}², main thread: first epoch ${round(coldMs)} ms (decode+resize+augment), later epochs ${round(warmMs)} ms (augment from cache; max ${round(Math.max(...warm))} ms)`);
    console.log(`cache: ${round(perCaseKb)} KiB per case (${round(perCaseKb * 750 / 1024)} MiB for RIGA's 750 cases)`);
    console.log(`share of a ${STEP_MS_REFERENCE} ms training step: ${round((100 * warmMs) / STEP_MS_REFERENCE, 2)}% (first epoch ${round((100 * coldMs) / STEP_MS_REFERENCE, 2)}%); limit 10%`);

    // Worker loader against a simulated synchronous step: how long does the consumer wait per batch?
    const loader = new DataLoader(ds, ds.cases, { ...opts, prefetch: 2 });
    const waits: number[] = [];
    try {
      for (const epoch of [0, 1]) {
        let first = true;
        let t0 = performance.now();
        for await (const batch of loader.epoch(epoch)) {
          const waited = performance.now() - t0;
          if (!(epoch === 0 && first)) waits.push(waited); // the very first batch cannot be ahead of anything
          first = false;
          void batch;
          busyWait(stepMs);
          t0 = performance.now();
        }
      }
    } finally {
      await loader.close();
    }
    const waitMs = mean(waits);
    if (process.env.AVAP_BENCH_DEBUG) console.log(waits.map((w) => round(w)).join(" "));
    console.log(`worker loader, simulated ${stepMs} ms synchronous step: consumer waits ${round(waitMs, 2)} ms per batch on average (max ${round(Math.max(...waits), 2)} ms)`);

    console.log(JSON.stringify({
      batch_ms: round(warmMs, 2),
      first_epoch_batch_ms: round(coldMs, 2),
      share_of_2s_step: round(warmMs / STEP_MS_REFERENCE, 4),
      first_epoch_share_of_2s_step: round(coldMs / STEP_MS_REFERENCE, 4),
      worker_wait_ms: round(waitMs, 2),
      simulated_step_ms: stepMs,
      cache_kib_per_case: round(perCaseKb),
      synth_ms_per_case: round(synthMs / CASES),
      batch: BATCH,
      size: SIZE,
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
