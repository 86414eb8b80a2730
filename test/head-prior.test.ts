// Every baseline's sigmoid segmentation outputs start at the training set's foreground frequency of
// their structure (RetinaNet's prior initialisation), through one shared path: foregroundFrequencies
// → BaselineMethod.initialize → SegmentationHead.initializePrior. Outputs that are not foreground
// logits (CM-Net's confusion matrices, PADL's log-variances) keep their initialisation.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDataset, selectCases } from '../src/data/dataset';
import { MIN_FOREGROUND_FREQUENCY, TrainingStatistics, foregroundFrequencies, trainingStatistics } from '../src/data/statistics';
import { writeSynthDataset } from '../src/data/synth';
import { ConfusionMatrixNet } from '../src/methods/cmNet';
import { Method, Prediction } from '../src/methods/method';
import { MultiHeadUnet } from '../src/methods/mhUnet';
import { MultiRaterNet } from '../src/methods/mrNet';
import { PadlNet } from '../src/methods/padl';
import { buildMethod, methodConfigFor } from '../src/methods/registry';
import { SegmentationHead } from '../src/models/heads/segmentation';
import { SegmentationUnet } from '../src/models/unet';
import { loadRun } from '../src/train/loadRun';
import { Tensor, manualSeed, nn, noGrad, randn, tidy } from '../src/torch';
import { TRAIN_DEFAULTS, train } from '../src/train/trainer';

const M = 3;
const STRUCTURES = ['disc', 'cup'];
const K = STRUCTURES.length;

const logit = (p: number) => Math.log(p / (1 - p));
const values = (t: Tensor) => Array.from(noGrad(() => tidy(() => t.detach().float().contiguous().data() as Float32Array)));

test('foregroundFrequencies: the mean vote averaged over the training pixels, per structure', () => {
  const floor = MIN_FOREGROUND_FREQUENCY;
  const rows: { name: string; histogram: number[]; expected: number }[] = [
    { name: 'M = 2: (0·6 + ½·2 + 1·2) / 10', histogram: [6, 2, 2], expected: 0.3 },
    { name: 'M = 1: a plain foreground share', histogram: [3, 1], expected: 0.25 },
    { name: 'M = 3: (⅓·10 + ⅔·10 + 20) / 100', histogram: [60, 10, 10, 20], expected: 0.3 },
    { name: 'never marked: raised to the floor', histogram: [10, 0, 0], expected: floor },
    { name: 'always marked by everyone: lowered to 1 − floor', histogram: [0, 0, 0, 5], expected: 1 - floor },
    { name: 'no pixel counted: ½', histogram: [0, 0, 0], expected: 0.5 },
  ];
  for (const { name, histogram, expected } of rows) {
    const [p] = foregroundFrequencies({ agreementHistogram: [histogram] });
    assert.ok(Math.abs(p - expected) < 1e-12, `${name}: ${p} vs ${expected}`);
  }
  // One entry per structure, each from its own histogram.
  assert.deepEqual(foregroundFrequencies({ agreementHistogram: [[6, 2, 2], [3, 0, 1]] }).map((p) => +p.toFixed(12)), [0.3, 0.25]);
});

test('SegmentationHead.initializePrior: refuses outputs that are not groups of the structures, and frequencies outside (0, 1)', () => {
  manualSeed(0);
  const head = new SegmentationHead(4, 5);
  assert.throws(() => head.initializePrior([0.1, 0.2]), /5 of 5 outputs are not groups of 2 structures/);
  assert.throws(() => head.initializePrior([0.1], 6), /6 of 5 outputs/);
  assert.throws(() => head.initializePrior([0]), /must lie in \(0, 1\), got 0/);
  head.dispose();
});

/** Disc (⅓·10 + ⅔·10 + 20) / 100 = 0.3, cup (⅓·5 + ⅔·5 + 5) / 100 = 0.1. */
const STATISTICS: TrainingStatistics = { agreementHistogram: [[60, 10, 10, 20], [85, 5, 5, 5]] };
const FREQUENCIES = [0.3, 0.1];

/** What a classifier's bias must be after initialize: the structure's prior (repeated per group), or null where it keeps its value. */
interface ExpectedBias { name: string; classifier: nn.Conv2d; expected: (number | null)[] }

interface PriorRow {
  id: string;
  /** Every 1×1 classifier the method's outputs come from, with the bias each must start at. */
  biases(model: nn.Module, priorLogits: number[]): ExpectedBias[];
  /** The prediction's maps that equal p_s once every classifier above reads nothing (zero weights). */
  atPrior: (keyof Prediction)[];
}

const groups = (priorLogits: number[], count: number) => Array.from({ length: count }, () => priorLogits).flat();
const kept = (count: number) => new Array<null>(count).fill(null);

const BASELINES: PriorRow[] = [
  ...['single:2', 'mv-unet', 'ls-unet'].map((id): PriorRow => ({
    id,
    biases: (model, priorLogits) => [{ name: 'head', classifier: (model as SegmentationUnet).head.classifier, expected: priorLogits }],
    atPrior: ['calibrated', 'annotators'],
  })),
  {
    id: 'mh-unet',
    biases: (model, priorLogits) => (model as MultiHeadUnet).heads.items.map((h, m) => ({ name: `head ${m + 1}`, classifier: h.classifier, expected: priorLogits })),
    atPrior: ['calibrated', 'annotators'],
  },
  {
    // The annotators' maps A_r·p mix the clean map with the confusion matrices, which keep their identity prior.
    id: 'cm-net',
    biases: (model, priorLogits) => {
      const net = model as ConfusionMatrixNet;
      return [
        { name: 'clean segmentation', classifier: net.segmentation.classifier, expected: priorLogits },
        { name: 'confusion matrices', classifier: net.confusion.classifier, expected: kept(M * K * 4) },
      ];
    },
    atPrior: ['calibrated'],
  },
  {
    // The refined map is the coarse logits plus a residual: the residual starts at zero, not at the prior.
    id: 'mr-net',
    biases: (model, priorLogits) => {
      const net = model as MultiRaterNet;
      return [
        { name: 'coarse', classifier: net.coarseHead.classifier, expected: priorLogits },
        { name: 'rater reconstructions', classifier: net.reconstruction.classifier, expected: groups(priorLogits, M) },
        { name: 'refinement residual', classifier: net.refinement.classifier, expected: new Array(K).fill(0) },
      ];
    },
    atPrior: ['calibrated', 'annotators'],
  },
  {
    id: 'padl',
    biases: (model, priorLogits) => {
      const net = model as PadlNet;
      return [
        { name: 'meta μ₀ | log-variance', classifier: net.stochasticError.classifier, expected: [...priorLogits, ...kept(K)] },
        ...net.preferences.items.map((h, m) => ({ name: `annotator ${m + 1} μ | log-variance`, classifier: h.classifier, expected: [...priorLogits, ...kept(K)] })),
      ];
    },
    atPrior: ['calibrated', 'annotators'],
  },
];

function buildBaseline(id: string): Method {
  manualSeed(0);
  return buildMethod(methodConfigFor(id, {
    structures: STRUCTURES, annotators: Array.from({ length: M }, (_, k) => `A${k + 1}`), inChannels: 3,
    encoder: 'resnet18', featureChannels: 8, steps: 2,
  }));
}

for (const row of BASELINES) {
  test(`${row.id}: initialize starts its segmentation biases at logit(p_s) and leaves the others alone`, () => {
    const method = buildBaseline(row.id);
    const priorLogits = FREQUENCIES.map(logit);
    const biases = row.biases(method.model, priorLogits);
    const before = biases.map((b) => values(b.classifier.bias!));
    assert.ok(method.initialize, `${row.id} has an initialize hook`);
    method.initialize(STATISTICS);
    biases.forEach((b, i) => {
      const after = values(b.classifier.bias!);
      assert.equal(after.length, b.expected.length, `${b.name}: outputs`);
      b.expected.forEach((e, c) => {
        const want = e ?? before[i][c];
        assert.ok(Math.abs(after[c] - want) < 1e-5, `${row.id} ${b.name}, output ${c}: bias ${after[c]}, expected ${want}`);
      });
    });

    // With every classifier reading nothing, the prediction is the prior itself, whatever the image.
    noGrad(() => biases.forEach((b) => void b.classifier.weight.zero_()));
    method.model.eval();
    const prediction = method.predict(randn([2, 3, 32, 32]));
    for (const key of row.atPrior) {
      const map = prediction[key];
      const [B] = map.shape;
      const plane = map.shape.at(-1)! * map.shape.at(-2)!;
      const data = values(map);
      const groupsPerImage = data.length / B / plane / K;
      for (let i = 0; i < data.length; i += plane) {
        const structure = Math.floor(i / plane) % K;
        assert.ok(Math.abs(data[i] - FREQUENCIES[structure]) < 1e-5, `${row.id} ${key} (${groupsPerImage} map(s) per structure): ${data[i]} vs p = ${FREQUENCIES[structure]}`);
      }
    }
    noGrad(() => tidy(() => { prediction.calibrated.dispose(); prediction.annotators.dispose(); }));
    method.model.dispose();
  });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-head-prior-'));
const data = path.join(tmp, 'data');
const ready = writeSynthDataset({ out: data, cases: 4, train: 4, annotators: M, size: 32, seed: 0 });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const row of BASELINES) {
  test(`${row.id}: a new run starts from the training set's prior and trains`, async () => {
    await ready;
    const run = path.join(tmp, `run-${row.id.replace(':', '-')}`);
    const summary = await train({
      ...TRAIN_DEFAULTS, data, out: run, method: row.id, size: 32, batchSize: 2, lr: 1e-3, encoder: 'resnet18',
      featureChannels: 8, steps: 2, resume: false, progress: false, print: () => undefined,
    });
    assert.deepEqual(summary.stages.map((s) => s.steps), [2]);
    const ds = await openDataset(data);
    const frequencies = foregroundFrequencies(await trainingStatistics(ds, selectCases(ds, { split: 'train' }), 32));
    const loaded = loadRun(run);
    try {
      // Two Adam steps at 1e-3 move a bias by a few thousandths; PyTorch's default would be up to ±0.35 away.
      for (const b of row.biases(loaded.method.model, frequencies.map(logit))) {
        const after = values(b.classifier.bias!);
        b.expected.forEach((e, c) => {
          if (e !== null) assert.ok(Math.abs(after[c] - e) < 0.02, `${row.id} ${b.name}, output ${c}: bias ${after[c]}, prior ${e}`);
        });
      }
    } finally {
      loaded.method.model.dispose();
    }
  });
}
