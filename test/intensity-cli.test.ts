import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ctRule } from '../src/data/intensity';
import { Normalizer } from '../src/data/normalization';
import { unitInput, openOnnxModel, torchEngine } from '../src/predict/engine';
import { loadRun } from '../src/train/loadRun';
import { readNifti } from '../src/io/nifti';
import { tmpDir } from './data-fixtures';
import { avap, ok } from './cli-run';

test('a CT dataset: training records the foreground CT rule, and torch and ONNX prediction feed the model identical inputs', async () => {
  const root = tmpDir('intensity-cli');
  ok(avap('synth', '--layout', 'qubiq', '--variant', 'ct', '--out', path.join(root, 'q'), '--cases', '6', '--train', '4', '--annotators', '2', '--size', '32', '--seed', '4'));
  const data = path.join(root, 'q', 'synthetic-ct');
  const run = path.join(root, 'run');
  ok(avap('train', '--data', data, '--split', 'Training', '--method', 'mv-unet', '--out', run, '--size', '32', '--batch-size', '2', '--encoder', 'resnet18', '--seed', '3', '--threads', '1', '--steps', '1', '--val-fraction', '0'));

  // The recorded rule is the one computed here from the training images' raw values under any rater's mask.
  const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  const foreground: number[] = [];
  for (const id of config.data.trainCases as string[]) {
    const dir = path.join(data, 'Training', id.replace(/^Training-/, ''));
    const image = await readNifti(path.join(dir, 'image.nii.gz'));
    const masks = await Promise.all(fs.readdirSync(dir).filter((f) => f.startsWith('task')).map((f) => readNifti(path.join(dir, f))));
    for (let i = 0; i < image.data.length; i++) if (masks.some((m) => m.data[i] > 0.5)) foreground.push(image.data[i]);
  }
  assert.ok(foreground.length > 0);
  const recorded = JSON.parse(fs.readFileSync(path.join(run, 'intensity.json'), 'utf8'));
  const want = ctRule(foreground, data);
  assert.equal(recorded.length, 1);
  assert.equal(recorded[0].modality, 'CT');
  if (want.modality !== 'CT') throw new Error('unreachable');
  for (const [a, b] of [[recorded[0].clip[0], want.clip[0]], [recorded[0].clip[1], want.clip[1]], [recorded[0].mean, want.mean], [recorded[0].sd, want.sd]]) {
    assert.ok(Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
  }

  // Torch (normalised in TypeScript) and ONNX (the run exported in memory; normalisation in the graph,
  // the intensity rule carried in its metadata) prepare the same values for an image of another split.
  const image = path.join(data, 'Validation', 'case01', 'image.nii.gz');
  const loaded = loadRun(run);
  try {
    const torch = torchEngine(loaded);
    const onnx = await openOnnxModel(run);
    try {
      assert.deepEqual(onnx.intensity, loaded.intensity);
      const viaTorch = (await torch.loadImage(image)).input;
      const unit = (await onnx.loadImage(image)).input;
      const folded = new Float32Array(unit.length);
      new Normalizer(loaded.normalization, 1, 32).apply(unit, folded);
      assert.deepEqual(folded, viaTorch);
      // Without the rule the same file gives other inputs: the check above could fail.
      const perImage = (await unitInput(image, 32, 1)).input;
      assert.notDeepEqual(perImage, unit);
    } finally {
      await onnx.dispose();
    }
  } finally {
    loaded.method.model.dispose();
  }
});
