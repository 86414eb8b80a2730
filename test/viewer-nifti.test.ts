// The browser viewer on a NIfTI volume: the page reads it with nifti-reader-js, normalises it as
// `avap predict` does, runs the exported model on every x-y slice with onnxruntime-web in Debian's
// headless Chromium, and must hold the inputs Node prepares and the maps `avap predict --format qubiq`
// writes for the same slices.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset } from '../src/data/dataset';
import { Z_RANGE as PIPELINE_Z_RANGE } from '../src/data/niftiImage';
import { resizeBilinear } from '../src/data/resize';
import { writeQubiqSynth } from '../src/data/synthQubiq';
import { sliceOfVolume } from '../src/data/volumes';
import { openExportedModel } from '../src/export/export';
import { readNifti } from '../src/io/nifti';
import { openOnnxModel } from '../src/predict/engine';
import { serveSite } from '../src/viewer/server';
import { viewerSite } from '../src/viewer/site';
import { Z_RANGE } from '../src/viewer/volume';
import { findChromium, launchChromium, openViewerPage } from './chromium';
import { avap, ok } from './cli-run';
import { tmpDir } from './data-fixtures';

test('the page\'s 16-bit code range is the pipeline\'s', () => {
  assert.equal(Z_RANGE, PIPELINE_Z_RANGE);
});

test('in Chromium the viewer opens a NIfTI volume (file picker), runs the model slice by slice and holds avap predict\'s maps', async (t) => {
  const chromium = findChromium();
  if (!chromium.executable) {
    process.stdout.write(`# browser test skipped: ${chromium.reason}\n`);
    t.skip(chromium.reason);
    return;
  }
  const root = tmpDir('viewer-nifti');
  await writeQubiqSynth({ out: path.join(root, 'q'), variant: 'volume', cases: 2, train: 1, annotators: 2, size: 32, slices: 6, seed: 5 });
  const data = path.join(root, 'q', 'synthetic-volume');
  const run = path.join(root, 'run');
  ok(avap('train', '--data', data, '--split', 'Training', '--method', 'avap', '--out', run, '--size', '32', '--batch-size', '4', '--encoder', 'resnet18',
    '--steps', '1', '--preference-steps', '1', '--seed', '2', '--empty-slice-rate', '1', '--no-augment'));
  const onnx = path.join(root, 'model.onnx');
  ok(avap('export', '--model', run, '--out', onnx));
  const model = openExportedModel(onnx);
  assert.equal(model.info.intensity?.[0].modality, 'CT', 'the model carries the CT rule the page applies');
  const sub = path.join(root, 'sub');
  ok(avap('predict', '--model', onnx, '--engine', 'onnx', '--input', data, '--split', 'Validation', '--format', 'qubiq', '--out', sub));
  const submitted = await readNifti(path.join(sub, 'synthetic-volume', 'case01', 'task01.nii.gz'));
  const imageFile = path.join(data, 'Validation', 'case01', 'image.nii.gz');
  // What Node feeds the model for each slice.
  const ds = await openDataset(data);
  const volume = ds.volumes!.find((v) => v.id === 'Validation-case01')!;
  const engine = await openOnnxModel(onnx);
  const nodeInputs = await Promise.all([0, 1, 2, 3, 4, 5].map(async (z) => engine.prepareDecoded(await sliceOfVolume(volume, 2, z, engine.intensity)).input));
  await engine.dispose();

  const viewer = await serveSite(viewerSite(model), 0);
  const browser = await launchChromium(chromium.executable);
  try {
    const { page, failures, openFile } = await openViewerPage(browser.context, viewer.url);
    await openFile(imageFile);
    assert.deepEqual(failures, []);

    const opened: { shape: number[]; slice: number; inputs: number[][]; maps: number[][] } = await page.evaluate((name: string) => {
      const v = (globalThis as any).avapViewer.volume; // eslint-disable-line @typescript-eslint/no-explicit-any
      return { shape: v.shape, slice: v.slice, inputs: v.inputs.map((a: Float32Array) => Array.from(a)), maps: v.outputs.map((o: Record<string, Float32Array>) => Array.from(o[name])) };
    }, model.info.outputs.find((o) => o.annotator === null)!.name);
    assert.deepEqual(opened.shape, [32, 32, 6]);
    assert.equal(opened.slice, 3, 'the middle slice is shown first');
    assert.equal(opened.maps.length, 6);
    let worstInput = 0;
    let worstMap = 0;
    for (let z = 0; z < 6; z++) {
      opened.inputs[z].forEach((v, i) => { worstInput = Math.max(worstInput, Math.abs(v - nodeInputs[z][i])); });
      const map = resizeBilinear(Float32Array.from(opened.maps[z]), 32, 32, 1, 32, 32);
      map.forEach((v, i) => { worstMap = Math.max(worstMap, Math.abs(Math.min(1, Math.max(0, v)) - submitted.data[z * 32 * 32 + i])); });
    }
    t.diagnostic(`the page vs avap predict: inputs differ by ${worstInput}, calibrated maps by ${worstMap.toExponential(2)}`);
    assert.equal(worstInput, 0, 'the page prepares each slice exactly as avap predict does');
    assert.ok(worstMap <= 1e-4, `max abs difference ${worstMap}`);

    // Moving the slider shows another slice: its grey image and its maps.
    const grey = () => page.evaluate(`Array.from(document.getElementById('image').getContext('2d').getImageData(0, 0, 8, 8).data).join()`);
    const before = await grey();
    await page.evaluate(() => (globalThis as any).avapViewer.setSlice(0)); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(await page.evaluate(() => (globalThis as any).avapViewer.volume.slice), 0); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.notEqual(await grey(), before, 'slice 0 (air) is drawn, not slice 3');
    assert.match(await page.evaluate(`document.getElementById('slice-label').textContent`), /^slice z = 0 of 6$/);
  } finally {
    await browser.close();
    await viewer.close();
  }
});
