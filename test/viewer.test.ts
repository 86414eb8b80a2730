// The browser viewer: its pixel maths (shared by the page and these checks), the files `avap view` serves,
// and the page itself in Debian's headless Chromium, where the model runs on onnxruntime-web and must draw
// what onnxruntime-node computes for the same image.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { main } from '../src/cli/main';
import { writeSynthDataset } from '../src/data/synth';
import { exportMethod } from '../src/export/export';
import { ModelInfo } from '../src/export/metadata';
import { readImage } from '../src/io/image';
import { buildMethod, methodConfigFor } from '../src/methods/registry';
import { unitInput } from '../src/predict/engine';
import { manualSeed, noGrad, randn } from '../src/torch';
import { AVAP } from '../src/models/avap';
import { RunConfig } from '../src/train/run';
import { serveSite } from '../src/viewer/server';
import { planSite, viewerSite } from '../src/viewer/site';
import {
  annotatorColour, cupToDisc, displayMap, fitWithin, heatColour, modelInput, outlineMask, outlineThickness, spread, structureStats,
} from '../src/viewer/render';
import { findChromium, launchChromium, openViewerPage } from './chromium';

const S = 64;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-viewer-'));
test.after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh AVAP model (random weights: the viewer must show what the file computes, trained or not). */
function tinyModel(): { bytes: Uint8Array; info: ModelInfo } {
  manualSeed(4);
  const model = methodConfigFor('avap', {
    structures: ['disc', 'cup'], annotators: ['A1', 'A2', 'A3'], inChannels: 3, encoder: 'resnet18', featureChannels: 8, steps: 1,
  }, { preferenceSteps: 1 });
  const method = buildMethod(model);
  // An untrained APM predicts the consensus for every annotator; give its controller the random filters
  // of a trained one, so that annotators' outlines exist and differ.
  noGrad(() => { for (const p of (method.model as AVAP).apm.controller.parameters()) p.copy_(randn(p.shape).mul(0.5)); });
  const config = {
    version: 2, model, input: { size: S, channels: 3 }, data: { root: '', name: 'test', selection: {}, trainCases: [], valCases: [] },
    optimizer: { lr: 1e-3, weightDecay: 0, batchSize: 1, schedule: 'constant' }, seed: 0, augment: false, pretrained: null, precision: 'fp32',
  } as RunConfig;
  try {
    return exportMethod(method, { config, normalization: { kind: 'imagenet' } });
  } finally {
    method.model.dispose();
  }
}

const model = tinyModel();

async function fundusImage(): Promise<string> {
  const data = path.join(root, 'data');
  if (!fs.existsSync(data)) await writeSynthDataset({ out: data, cases: 1, annotators: 3, size: 96, seed: 3 });
  return path.join(data, 'images', fs.readdirSync(path.join(data, 'images'))[0]);
}

// ---------------------------------------------------------------- the page's maths, in Node
test('outlines: the boundary pixels of map > 0.5, thicker on request', () => {
  const map = Float32Array.from([
    0, 0, 0, 0, 0,
    0, 1, 1, 1, 0,
    0, 1, 1, 1, 0,
    0, 1, 1, 0.5, 0,
    0, 0, 0, 0, 0,
  ]);
  assert.deepEqual([...outlineMask(map, 5, 5, 1)], [
    0, 0, 0, 0, 0,
    0, 1, 1, 1, 0,
    0, 1, 0, 1, 0,
    0, 1, 1, 0, 0,
    0, 0, 0, 0, 0,
  ]);
  const big = new Float32Array(49).fill(1);
  assert.equal(outlineMask(big, 7, 7, 1).reduce((a, b) => a + b, 0), 24, 'a full map outlines its border');
  assert.equal(outlineMask(big, 7, 7, 2).reduce((a, b) => a + b, 0), 40);
  assert.equal(outlineThickness(640, 480), 2);
});

test('areas, vertical extents and cup-to-disc ratios from the largest region of each thresholded map', () => {
  const size = 5;
  const disc = Float32Array.from([
    0, 0.9, 0.9, 0, 0,
    0, 0.9, 0.9, 0, 0,
    0, 0.9, 0.9, 0, 0,
    0, 0, 0, 0, 0,
    0, 0, 0, 0, 0.9, // a speck: not part of the disc
  ]);
  const cup = Float32Array.from([
    0, 0, 0, 0, 0,
    0, 0.6, 0, 0, 0,
    0, 0.51, 0.5, 0, 0,
    0, 0, 0, 0, 0,
    0, 0, 0, 0, 0,
  ]);
  const d = structureStats(disc, size, 10, 10);
  const c = structureStats(cup, size, 10, 10);
  assert.deepEqual(d, { area: 24, height: 6 });
  assert.deepEqual(c, { area: 8, height: 4 });
  assert.deepEqual(cupToDisc(d, c), { vertical: 4 / 6, area: 8 / 24 });
  assert.deepEqual(cupToDisc(structureStats(new Float32Array(25), size, 10, 10), c), { vertical: null, area: null });
});

test('disagreement is the per-pixel spread of the annotators; heat and sizes', () => {
  const s = spread([Float32Array.from([0, 1, 0.5]), Float32Array.from([1, 1, 0.5])]);
  assert.deepEqual([...s], [0.5, 0, 0]);
  assert.deepEqual(heatColour(0, 1), [0, 0, 4, 0]);
  assert.deepEqual(heatColour(1, 0.5), [252, 255, 164, 128]);
  assert.ok(heatColour(0.5, 1)[3] > heatColour(0.25, 1)[3], 'more probable, more opaque');
  assert.deepEqual(fitWithin(2000, 1500, 640), { width: 640, height: 480 });
  assert.deepEqual(fitWithin(64, 64, 640), { width: 640, height: 640 });
  assert.deepEqual(annotatorColour(9), annotatorColour(1));
});

test("the page's model input is bit for bit what avap predict --engine onnx feeds the model", async () => {
  const file = await fundusImage();
  const img = await readImage(file);
  const rgba = new Uint8Array(img.width * img.height * 4);
  for (let i = 0; i < img.width * img.height; i++) rgba.set([...img.data.subarray(i * 3, i * 3 + 3), 255], i * 4);
  for (const channels of [3, 1]) {
    const expected = await unitInput(file, S, channels);
    assert.deepEqual(modelInput(rgba, img.width, img.height, S, channels), expected.input, `${channels} channel(s)`);
  }
});

// ---------------------------------------------------------------- the files and the server
test('avap view serves the page, the model and onnxruntime-web locally, cross-origin isolated', async () => {
  const viewer = await serveSite(viewerSite(model), 0);
  try {
    const index = await fetch(viewer.url);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.equal(index.headers.get('cross-origin-opener-policy'), 'same-origin');
    const html = await index.text();
    assert.doesNotMatch(html, /https?:\/\//, 'the page names no outside address');
    const info = (await (await fetch(`${viewer.url}model.json`)).json()) as ModelInfo;
    assert.deepEqual(info.outputs, model.info.outputs);
    const wasm = await fetch(`${viewer.url}ort/ort-wasm-simd-threaded.wasm`);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.equal((await fetch(`${viewer.url}model.onnx`)).headers.get('content-length'), String(model.bytes.byteLength));
    assert.equal((await fetch(`${viewer.url}app/viewer/page.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
    for (const p of ['../package.json', 'app/../../package.json', 'nothing-here']) assert.equal((await fetch(`${viewer.url}${p}`)).status, 404, p);
    assert.equal((await fetch(viewer.url, { method: 'POST' })).status, 405);
    await assert.rejects(serveSite([], Number(new URL(viewer.url).port)), /--port: \d+ is already in use/);
  } finally {
    await viewer.close();
  }
});

test('avap export --viewer writes the same site as a folder; avap view rejects a bad model in one line', async () => {
  const dir = path.join(root, 'site');
  planSite(viewerSite(model), dir).write();
  for (const f of ['index.html', 'viewer.css', 'app/viewer/page.js', 'app/viewer/render.js', 'app/data/resize.js', 'ort/ort.wasm.min.js', 'ort/ort-wasm-simd-threaded.wasm', 'model.onnx', 'model.json']) {
    assert.ok(fs.existsSync(path.join(dir, f)), f);
  }
  assert.deepEqual(new Uint8Array(fs.readFileSync(path.join(dir, 'model.onnx'))), new Uint8Array(model.bytes));
  const junk = path.join(root, 'junk.onnx');
  fs.writeFileSync(junk, 'not a model');
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string) => { stderr += chunk; return true; }) as typeof process.stderr.write;
  try {
    assert.equal(await main(['node', 'avap', 'view', '--model', junk, '--port', '0']), 1);
  } finally {
    process.stderr.write = write;
  }
  assert.match(stderr, /^avap: .*junk\.onnx: not an ONNX model/);
});

// ---------------------------------------------------------------- the page in a real browser
test('in Chromium the viewer runs the model and draws what onnxruntime-node computes; switching annotators changes the outline', async (t) => {
  const chromium = findChromium();
  if (!chromium.executable) {
    process.stdout.write(`# browser test skipped: ${chromium.reason}\n`);
    t.skip(chromium.reason);
    return;
  }
  const file = await fundusImage();
  const { info } = model;
  // The reference: onnxruntime-node on the image as avap predict prepares it.
  const session = await ort.InferenceSession.create(model.bytes);
  const reference = await session.run({ image: new ort.Tensor('float32', (await unitInput(file, S, 3)).input, [1, 3, S, S]) });
  await session.release();

  const viewer = await serveSite(viewerSite(model), 0);
  const browser = await launchChromium(chromium.executable);
  try {
    const { page, failures, openFile } = await openViewerPage(browser.context, viewer.url);
    await openFile(file);

    // 1. The page's outputs are onnxruntime-node's.
    const outputs: Record<string, number[]> = await page.evaluate(() => {
      const v = (globalThis as any).avapViewer; // eslint-disable-line @typescript-eslint/no-explicit-any
      return Object.fromEntries(Object.entries(v.outputs).map(([k, a]) => [k, Array.from(a as Float32Array)]));
    });
    assert.deepEqual(Object.keys(outputs).sort(), info.outputs.map((o) => o.name).sort());
    let worst = 0;
    for (const o of info.outputs) {
      const expected = reference[o.name].data as Float32Array;
      outputs[o.name].forEach((v, i) => { worst = Math.max(worst, Math.abs(v - expected[i])); });
    }
    t.diagnostic(`onnxruntime-web in Chromium vs onnxruntime-node: max abs difference ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4, `max abs difference ${worst}`);

    const { width, height } = await page.evaluate(() => (globalThis as any).avapViewer.display); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual({ width, height }, fitWithin(96, 96, 640));
    // In-page code as source text: this project's TypeScript has no DOM types.
    const pixels = async (id: string) => Buffer.from(await page.evaluate(`(() => {
      const c = document.getElementById(${JSON.stringify(id)});
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let s = '';
      for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode(...d.subarray(i, i + 8192));
      return btoa(s);
    })()`) as string, 'base64');
    const refMap = (name: string) => displayMap(reference[name].data as Float32Array, S, width, height);
    const expectedOutline = (annotator: number) => {
      const mask = new Uint8Array(width * height);
      for (const o of info.outputs.filter((x) => x.annotator === annotator)) {
        outlineMask(refMap(o.name), width, height, outlineThickness(width, height)).forEach((v, i) => { if (v) mask[i] = 1; });
      }
      return mask;
    };
    const outlineOf = (rgba: Buffer) => Uint8Array.from({ length: width * height }, (_, i) => (rgba[i * 4 + 3] > 0 ? 1 : 0));
    const mismatches = (a: Uint8Array, b: Uint8Array) => a.reduce((n, v, i) => n + (v !== b[i] ? 1 : 0), 0);

    // 2. One annotator at a time: its outline, in its colour, as computed from onnxruntime-node's maps.
    const drawn: Uint8Array[] = [];
    for (const k of [1, 2]) {
      await page.click(`input[name=annotator][value="${k}"]`);
      const rgba = await pixels('outline');
      const mask = outlineOf(rgba);
      const expected = expectedOutline(k);
      const count = expected.reduce((a, b) => a + b, 0);
      assert.ok(count > 100, `annotator ${k}'s outline has ${count} pixels`);
      assert.ok(mismatches(mask, expected) <= 0.01 * count, `annotator ${k}: ${mismatches(mask, expected)} of ${count} outline pixels differ`);
      const colour = annotatorColour(k);
      for (let i = 0; i < mask.length; i++) if (mask[i]) assert.deepEqual([...rgba.subarray(i * 4, i * 4 + 3)], colour, `annotator ${k}'s colour`);
      drawn.push(mask);
    }
    assert.ok(mismatches(drawn[0], drawn[1]) > 0.05 * drawn[0].reduce((a, b) => a + b, 0), 'switching the annotator changes the outline');
    await page.click('input[name=annotator][value="all"]');
    const all = outlineOf(await pixels('outline'));
    assert.ok(all.reduce((a, b) => a + b, 0) >= drawn[0].reduce((a, b) => a + b, 0), 'all annotators together draw at least one annotator\'s outline');

    // 3. The heat overlay is the calibrated map's colours, then the disagreement's.
    const checkHeat = async (map: Float32Array, what: string) => {
      const rgba = await pixels('heat');
      const opacity: number = await page.evaluate(() => (globalThis as any).avapViewer.view.opacity); // eslint-disable-line @typescript-eslint/no-explicit-any
      let checked = 0;
      for (let i = 0; i < map.length; i++) {
        const [r, g, b, a] = heatColour(map[i], opacity);
        assert.ok(Math.abs(rgba[i * 4 + 3] - a) <= 1, `${what}: alpha at ${i}: ${rgba[i * 4 + 3]} vs ${a}`);
        // The canvas keeps colours premultiplied by alpha: reading back loses about 255 / alpha levels.
        if (a < 16) continue;
        checked++;
        const tolerance = Math.ceil(255 / a) + 1;
        for (const [c, e] of [[rgba[i * 4], r], [rgba[i * 4 + 1], g], [rgba[i * 4 + 2], b]]) assert.ok(Math.abs(c - e) <= tolerance, `${what}: colour at ${i}: ${c} vs ${e}`);
      }
      return checked;
    };
    await page.click('input[name=overlay][value="mean"]');
    for (const [s, structure] of info.structures.entries()) {
      await page.selectOption('#structure', String(s));
      const checked = await checkHeat(refMap(info.outputs.find((o) => o.structure === structure && o.annotator === null)!.name), `calibrated ${structure}`);
      assert.ok(checked > 0.1 * width * height, `calibrated ${structure}: ${checked} visible pixels compared`);
    }
    await page.click('input[name=overlay][value="spread"]');
    const cupMaps = info.outputs.filter((o) => o.structure === 'cup' && o.annotator !== null).map((o) => reference[o.name].data as Float32Array);
    await checkHeat(displayMap(spread(cupMaps).map((x) => x * 2), S, width, height), 'cup disagreement');

    // 4. The table's cup-to-disc ratios are those of onnxruntime-node's maps.
    const rows = await page.evaluate(`Object.fromEntries([...document.querySelectorAll('#stats tbody tr')]
      .map((tr) => [tr.dataset.label, [...tr.querySelectorAll('td')].slice(1).map((td) => td.textContent)]))`) as Record<string, string[]>;
    for (const k of [1, 2, 3]) {
      const stats = ['disc', 'cup'].map((s) => structureStats(reference[info.outputs.find((o) => o.structure === s && o.annotator === k)!.name].data as Float32Array, S, 96, 96));
      const cdr = cupToDisc(stats[0], stats[1]);
      assert.equal(rows[`A${k}`][2], cdr.vertical === null ? '–' : cdr.vertical.toFixed(2), `A${k} vertical CDR`);
      assert.equal(rows[`A${k}`][0], Math.round(stats[0].area).toLocaleString('en'), `A${k} disc area`);
    }
    assert.deepEqual(failures, [], 'every request was served locally');
    await page.screenshot({ path: path.join(root, 'viewer.png') });
    assert.ok(fs.statSync(path.join(root, 'viewer.png')).size > 10_000);
  } finally {
    await browser.close();
    await viewer.close();
  }
});
