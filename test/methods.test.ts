// Every method of the paper's Table II trains on the shared trainer and writes the common prediction
// layout; the method-specific properties the comparison relies on hold.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDataset, selectCases } from '../src/data/dataset';
import { writeSynthDataset } from '../src/data/synth';
import { annotatorPredictionFile, meanPredictionFile } from '../src/predict/folder';
import { UserError } from '../src/errors';
import { TrainingBatch } from '../src/methods/method';
import { MultiHeadMethod } from '../src/methods/mhUnet';
import { buildMethod, methodConfigFor, parseMethodConfig } from '../src/methods/registry';
import { SingleAnnotatorMethod } from '../src/methods/single';
import { evaluateModel } from '../src/eval/evaluateModel';
import { Tensor, cat, manualSeed, noGrad, rand, randn, tidy } from '../src/torch';
import { TRAIN_DEFAULTS, train } from '../src/train/trainer';
import { Rng } from '../src/util/random';
import { registeredMethodIds } from './method-ids';

const M = 3;
const STRUCTURES = ['disc', 'cup'];
const ALL_METHODS = registeredMethodIds(M);

function options(annotators = M) {
  return {
    structures: STRUCTURES, annotators: Array.from({ length: annotators }, (_, k) => `A${k + 1}`), inChannels: 3,
    encoder: 'resnet18', featureChannels: 8, steps: 2,
  };
}

/** AVAP's step 2 gets one step; the other methods have one stage. */
const methodOptions = (name: string) => (name === 'avap' ? { preferenceSteps: 1 } : {});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-methods-'));
const data = path.join(tmp, 'data');
const ready = writeSynthDataset({ out: data, cases: 12, train: 10, annotators: M, size: 32, seed: 0 });

for (const name of ALL_METHODS) {
  test(`${name}: two steps on a tiny synthetic set, then a complete prediction layout`, async () => {
    await ready;
    const run = path.join(tmp, `run-${name.replace(':', '-')}`);
    const summary = await train({
      ...TRAIN_DEFAULTS, data, out: run, method: name, size: 32, batchSize: 4, lr: 1e-3, encoder: 'resnet18',
      steps: 2, methodOptions: methodOptions(name), resume: false, progress: false, print: () => undefined,
    });
    assert.deepEqual(summary.stages.map((s) => s.steps), name === 'avap' ? [2, 1, 1, 1] : [2]);
    const ds = await openDataset(data);
    const cases = selectCases(ds, { split: 'test' });
    const evalDir = path.join(tmp, `eval-${name.replace(':', '-')}`);
    const evaluation = await evaluateModel(run, ds, cases, evalDir, { label: name });
    const predictions = path.join(evalDir, 'predictions');
    for (const c of cases) {
      for (const s of STRUCTURES) {
        assert.ok(fs.existsSync(meanPredictionFile(predictions, c.id, s)), `${c.id} ${s} mean map`);
        for (let k = 1; k <= M; k++) assert.ok(fs.existsSync(annotatorPredictionFile(predictions, c.id, s, k)), `${c.id} ${s} annotator ${k}`);
      }
    }
    for (const s of STRUCTURES) {
      assert.ok(Number.isFinite(evaluation.mean_voting[s]!), `${name}: mean voting of ${s} is a number`);
      assert.equal(evaluation.per_annotator[s].length, M);
    }
  });
}

test('every method config survives config.json and rebuilds the same model', () => {
  for (const name of ALL_METHODS) {
    const config = methodConfigFor(name, options(), methodOptions(name));
    const parsed = parseMethodConfig(JSON.parse(JSON.stringify(config)), 'config.json');
    assert.deepEqual(parsed, config);
    manualSeed(0);
    const method = buildMethod(parsed);
    assert.equal(method.name, name);
    method.model.dispose();
  }
});

test("AVAP's config: the paper's heads, and step 2 gets half of step 1's steps unless told otherwise", () => {
  const expected = {
    method: 'avap', structures: STRUCTURES, annotators: ['A1', 'A2'],
    backbone: { encoder: 'resnet34', inChannels: 3, featureChannels: 32 },
    avm: { hidden: 32, calibration: 'expectation' }, apm: { hidden: 8, conditioning: 'both' },
    training: { strategy: 'two-step', variationSteps: 1000, preferenceSteps: 500, preferenceFolds: 2 },
  };
  const config = methodConfigFor('avap', { ...options(2), encoder: 'resnet34', featureChannels: 32, steps: 1000 });
  assert.deepEqual(config, expected);
  assert.deepEqual(parseMethodConfig(JSON.parse(JSON.stringify(config)), 'config.json'), expected);
  assert.throws(() => methodConfigFor('avap', options(2), { preferenceSteps: 0 }), /--preference-steps 0 would leave the preference head \(APM\) untrained/);
});

test('single:K validates K against the number of annotators in one line naming --method', () => {
  assert.throws(() => methodConfigFor('single:4', options()), (e: Error) => e instanceof UserError && /^--method single:4: annotator 4 does not exist/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => methodConfigFor('single:0', options()), UserError);
  assert.throws(() => methodConfigFor('single:x', options()), /single:K/);
  assert.throws(() => methodConfigFor('u-net', options()), /unknown method 'u-net'/);
});

test('mh-unet has one head per annotator, and its size grows with M', () => {
  const built = [3, 5].map((m) => {
    manualSeed(0);
    const method = new MultiHeadMethod(methodConfigFor('mh-unet', options(m)) as never);
    const result = { heads: method.model.heads.length, params: method.model.parameterCount(), headParams: method.model.heads.at(0).parameterCount() };
    noGrad(() => tidy(() => {
      method.model.eval();
      const p = method.predict(randn([1, 3, 32, 32]));
      assert.deepEqual(p.annotators.shape, [1, m, 2, 32, 32]);
      assert.deepEqual(p.calibrated.shape, [1, 2, 32, 32]);
    }));
    method.model.dispose();
    return result;
  });
  assert.equal(built[0].heads, 3);
  assert.equal(built[1].heads, 5);
  assert.equal(built[1].params - built[0].params, 2 * built[0].headParams);
});

/** A training batch in which every annotator annotated every image. */
function batch(masks: Tensor, images: Tensor): TrainingBatch {
  const B = masks.shape[0];
  return { size: B, images, annotatorMasks: masks, agreementClasses: masks.sum(1).long(), meanVotes: masks.mean(1), available: new Uint8Array(B * M).fill(1) };
}

test("single:K's loss depends on annotator K's masks only", () => {
  manualSeed(1);
  const K = 2;
  const method = new SingleAnnotatorMethod(methodConfigFor(`single:${K}`, options()) as never);
  const stage = method.stages()[0];
  const loss = (b: TrainingBatch) => stage.loss(b, new Rng(0)).item();
  noGrad(() => tidy(() => {
    const images = randn([2, 3, 32, 32]);
    const masks = rand([2, M, 2, 32, 32]).gt(0.5).float();
    const own = masks.narrow(1, K - 1, 1);
    const base = loss(batch(masks, images));
    // Every other annotator's masks replaced: the loss does not move.
    const others = rand([2, M, 2, 32, 32]).gt(0.5).float();
    const swapped = cat([others.narrow(1, 0, K - 1), own, others.narrow(1, K, M - K)], 1);
    assert.equal(loss(batch(swapped, images)), base);
    // Annotator K's own masks changed: it does.
    const flipped = cat([masks.narrow(1, 0, K - 1), own.rsub(1), masks.narrow(1, K, M - K)], 1);
    assert.notEqual(loss(batch(flipped, images)), base);
  }));
  method.model.dispose();
});
