// npm run bench:avap — the cost of the full AVAP on this machine, and how it grows with the number of
// annotators M next to a multi-head network's:
//   • training throughput at 256² (images/s) of step 1 (backbone + AVM) and step 2 (APM alone);
//   • one-image inference latency (calibrated map + every annotator's map);
//   • for M = 2, 6, 16, 32: parameters and one-image inference time for all M annotators against one
//     annotator, for AVAP (one dynamic head, all annotators in one grouped convolution) and MH-UNet
//     (one segmentation head per annotator).
// Medians of a few timed repetitions after a warm-up; the defaults keep the run to a few minutes on
// 2 CPU cores. Flags: --size 256 --batch 8 --train-steps 3 --reps 5 --ms 2,6,16,32 --encoder resnet34.
// Last line: one JSON object.
import { AvapMethod } from '../src/methods/avap';
import { MultiHeadMethod } from '../src/methods/mhUnet';
import { Method, TrainingBatch } from '../src/methods/method';
import { buildMethod, methodConfigFor } from '../src/methods/registry';
import { F, Generator, Tensor, getNumThreads, manualSeed, nn, noGrad, optim, rand, randn, tidy } from '../src/torch';
import { Rng } from '../src/util/random';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const SIZE = Number(arg('size', '256'));
const BATCH = Number(arg('batch', '8'));
const TRAIN_STEPS = Number(arg('train-steps', '3'));
const REPS = Number(arg('reps', '5'));
const MS = arg('ms', '2,6,16,32').split(',').map(Number);
const ENCODER = arg('encoder', 'resnet34');
const STRUCTURES = ['disc', 'cup'];
const TRAINING_M = 6; // RIGA's six annotators

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Median milliseconds of `reps` calls, after one warm-up call unless `warmUp` is false. */
function time(fn: () => void, reps: number, warmUp = true): number {
  if (warmUp) fn();
  return median(Array.from({ length: reps }, () => {
    const t0 = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  }));
}

function build(method: 'avap' | 'mh-unet', M: number): Method {
  manualSeed(0);
  const config = methodConfigFor(method, {
    structures: STRUCTURES, annotators: Array.from({ length: M }, (_, k) => `A${k + 1}`), inChannels: 3,
    encoder: ENCODER, steps: 1,
  }, method === 'avap' ? { preferenceSteps: 1 } : {});
  return buildMethod(config);
}

/** A batch of random images and random annotator masks (the cost does not depend on their content). */
function randomBatch(M: number): TrainingBatch {
  const gen = new Generator(1);
  const masks = rand([BATCH, M, STRUCTURES.length, SIZE, SIZE], { generator: gen }).gt(0.5).float();
  return {
    size: BATCH, images: randn([BATCH, 3, SIZE, SIZE], { generator: gen }), annotatorMasks: masks,
    counts: masks.sum(1).long(), meanVotes: masks.mean(1), available: new Uint8Array(BATCH * M).fill(1),
  };
}

/** ms per training step of each of AVAP's stages, set up as the trainer does (modes, frozen modules, Adam). */
function trainingSteps(): Record<string, number> {
  const method = build('avap', TRAINING_M);
  const batch = randomBatch(TRAINING_M);
  const result: Record<string, number> = {};
  for (const stage of method.stages()) {
    for (const m of stage.frozen) m.eval().requiresGrad_(false);
    for (const m of stage.trained) m.train().requiresGrad_(true);
    const opt = new optim.Adam([...new Set(stage.trained.flatMap((m) => m.parameters()))], { lr: 1e-4, weightDecay: 1e-5 });
    const rng = new Rng(0);
    result[stage.name] = time(() => tidy(() => {
      opt.zeroGrad();
      const loss = tidy(() => stage.loss(batch, rng));
      loss.backward();
      opt.step();
      return loss.item();
    }), TRAIN_STEPS);
  }
  method.model.dispose();
  return result;
}

/**
 * Median ms of one image through each of two forwards, in eval mode without autograd (the sums force
 * the whole graph to run). The two alternate, so a change in the machine's load hits both alike.
 */
function inferencePair(model: nn.Module, all: (x: Tensor) => Tensor[], one: (x: Tensor) => Tensor[]): [number, number] {
  model.eval();
  const x = randn([1, 3, SIZE, SIZE], { generator: new Generator(2) });
  const run = (forward: (x: Tensor) => Tensor[]) => () => tidy(() => void forward(x).map((t) => t.sum().item()));
  return noGrad(() => {
    const [a, b] = [run(all), run(one)];
    a();
    b();
    const times: [number[], number[]] = [[], []];
    for (let r = 0; r < REPS; r++) {
      times[0].push(time(a, 1, false));
      times[1].push(time(b, 1, false));
    }
    return [median(times[0]), median(times[1])];
  });
}

interface Row {
  M: number;
  avap: { params: number; all_ms: number; one_ms: number };
  mh_unet: { params: number; all_ms: number; one_ms: number };
}

function scaling(M: number): Row {
  const avap = build('avap', M) as AvapMethod;
  const a = avap.model;
  const [avapAll, avapOne] = inferencePair(a,
    (x) => { const p = a.predict(x); return [p.calibrated, p.annotators]; },
    (x) => { const out = a.forward(x, [[0]]); return [a.avm.calibrated(out.variation), out.preference!]; });
  const avapParams = a.parameterCount();
  a.dispose();
  const mh = build('mh-unet', M) as MultiHeadMethod;
  const h = mh.model;
  const [mhAll, mhOne] = inferencePair(h,
    (x) => { const p = mh.predict(x); return [p.mean, p.annotators]; },
    (x) => [F.sigmoid(h.heads.at(0).forward(h.backbone.forward(x)))]);
  const mhParams = h.parameterCount();
  h.dispose();
  return { M, avap: { params: avapParams, all_ms: avapAll, one_ms: avapOne }, mh_unet: { params: mhParams, all_ms: mhAll, one_ms: mhOne } };
}

function main(): void {
  const started = Date.now();
  console.log(`AVAP cost on ${getNumThreads()} torch threads: ${ENCODER} U-Net, ${SIZE}², ${STRUCTURES.length} structures; medians of ${TRAIN_STEPS} training steps / ${REPS} inferences after a warm-up`);
  const steps = trainingSteps();
  const perSecond = (ms: number) => (BATCH * 1000) / ms;
  console.log(`training, batch ${BATCH}, M = ${TRAINING_M}: step 1 (backbone + AVM) ${steps.variation.toFixed(0)} ms/step = ${perSecond(steps.variation).toFixed(2)} images/s; `
    + `step 2 (APM, backbone frozen) ${steps.preference.toFixed(0)} ms/step = ${perSecond(steps.preference).toFixed(2)} images/s`);

  const rows = MS.map((M) => {
    const r = scaling(M);
    console.log(`M = ${String(M).padStart(2)}: AVAP ${(r.avap.params / 1e6).toFixed(3)} M params, one image ${r.avap.all_ms.toFixed(0)} ms for all ${M} annotators vs ${r.avap.one_ms.toFixed(0)} ms for one `
      + `(×${(r.avap.all_ms / r.avap.one_ms).toFixed(2)}) | MH-UNet ${(r.mh_unet.params / 1e6).toFixed(3)} M params, ${r.mh_unet.all_ms.toFixed(0)} ms vs ${r.mh_unet.one_ms.toFixed(0)} ms (×${(r.mh_unet.all_ms / r.mh_unet.one_ms).toFixed(2)})`);
    return r;
  });
  const six = rows.find((r) => r.M === TRAINING_M) ?? rows[0];
  console.log(`one-image inference latency of the full AVAP (calibrated map + all ${six.M} annotators): ${six.avap.all_ms.toFixed(0)} ms`);
  const first = rows[0];
  const last = rows[rows.length - 1];
  const growth = (a: number, b: number) => `${(((b - a) / a) * 100).toFixed(1)}%`;
  console.log(`from M = ${first.M} to ${last.M}: AVAP parameters +${growth(first.avap.params, last.avap.params)}, all-annotator inference +${growth(first.avap.all_ms, last.avap.all_ms)}; `
    + `MH-UNet parameters +${growth(first.mh_unet.params, last.mh_unet.params)}, inference +${growth(first.mh_unet.all_ms, last.mh_unet.all_ms)}`);
  console.log(JSON.stringify({
    size: SIZE, batch: BATCH, encoder: ENCODER, threads: getNumThreads(),
    train: {
      annotators: TRAINING_M,
      step1_ms: +steps.variation.toFixed(1), step1_images_per_s: +perSecond(steps.variation).toFixed(3),
      step2_ms: +steps.preference.toFixed(1), step2_images_per_s: +perSecond(steps.preference).toFixed(3),
    },
    inference_ms: +six.avap.all_ms.toFixed(1),
    scaling: rows.map((r) => ({
      M: r.M,
      avap: { params: r.avap.params, all_ms: +r.avap.all_ms.toFixed(1), one_ms: +r.avap.one_ms.toFixed(1) },
      mh_unet: { params: r.mh_unet.params, all_ms: +r.mh_unet.all_ms.toFixed(1), one_ms: +r.mh_unet.one_ms.toFixed(1) },
    })),
    seconds: Math.round((Date.now() - started) / 1000),
  }));
}

main();
