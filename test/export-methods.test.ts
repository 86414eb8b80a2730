// Every method exports through the one traced path, and the file is the same model: onnxruntime-node gives
// libtorch's maps (max abs difference ≤ 1e-4) on an input the trace never saw, with random weights and
// batch-norm statistics (equivalence does not need trained ones) and a per-pixel normalisation in the graph.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import { Normalization, Normalizer } from '../src/data/normalization';
import { UserError } from '../src/errors';
import { exportMethod, outputName } from '../src/export/export';
import { modelInfoFromBytes } from '../src/export/metadata';
import { AvapMethod } from '../src/methods/avap';
import { Method } from '../src/methods/method';
import { buildMethod, methodConfigFor } from '../src/methods/registry';
import { EngineOutput, onnxEngine, torchEngine } from '../src/predict/engine';
import { manualSeed, memory, noGrad, tensor, tidy } from '../src/torch';
import { RunConfig, RunDir } from '../src/train/run';
import { prng } from './torch-helpers';
import { registeredMethodIds } from './method-ids';

const S = 64;
const C = 3;
const STRUCTURES = ['disc', 'cup'];
const ANNOTATORS = ['A1', 'A2', 'A3'];
const METHODS = registeredMethodIds(ANNOTATORS.length);

function runConfig(model: RunConfig['model']): RunConfig {
  return {
    version: 2, model, input: { size: S, channels: C },
    data: { root: '', name: 'test', selection: {}, trainCases: [], valCases: [] },
    optimizer: { lr: 1e-3, weightDecay: 0, batchSize: 1, schedule: 'constant' }, seed: 0, augment: false, pretrained: null, precision: 'fp32',
  };
}

function perPixelNormalization(seed: number): Normalization {
  const r = prng(seed);
  const n = C * S * S;
  return { kind: 'per-pixel', size: S, channels: C, mean: Array.from({ length: n }, () => 0.3 + 0.4 * r()), std: Array.from({ length: n }, () => 0.1 + 0.3 * r()) };
}

/** A method with random weights, and batch-norm statistics far from their initial 0 / 1. */
function randomMethod(name: string, extra: Record<string, unknown> = {}, annotators = ANNOTATORS): { method: Method; config: RunConfig } {
  manualSeed(7);
  const model = methodConfigFor(name, { structures: STRUCTURES, annotators, inChannels: C, encoder: 'resnet18', featureChannels: 8, steps: 1 },
    name === 'avap' ? { preferenceSteps: 1, ...extra } : extra);
  const method = buildMethod(model);
  const r = prng(3);
  noGrad(() => tidy(() => {
    for (const [key, t] of method.model.namedBuffers()) {
      if (key.endsWith('running_mean')) t.copy_(tensor(Float32Array.from({ length: t.numel() }, () => 0.2 * (r() - 0.5)), t.shape));
      if (key.endsWith('running_var')) t.copy_(tensor(Float32Array.from({ length: t.numel() }, () => 0.5 + r()), t.shape));
    }
    for (const [key, t] of method.model.namedParameters()) {
      if (/(bn\d?|\.bn|downsample\.1)\.weight$/.test(key) || (t.ndim === 1 && key.endsWith('weight'))) t.copy_(tensor(Float32Array.from({ length: t.numel() }, () => 0.6 + 0.8 * r()), t.shape));
    }
  }));
  method.model.eval();
  return { method, config: runConfig(model) };
}

/** An input in [0, 1] unlike the trace's example (a smooth pattern with noise). */
function image(seed: number): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: C * S * S }, (_, i) => Math.min(1, Math.max(0, 0.5 + 0.4 * Math.sin(i / 37) + 0.1 * (r() - 0.5))));
}

/** One image through both engines: the exported file on onnxruntime-node and the method on libtorch. */
async function predictBoth(method: Method, config: RunConfig, normalization: Normalization, bytes: Uint8Array, seed = 11): Promise<{ onnx: EngineOutput; torch: EngineOutput; annotators: number[] }> {
  const torch = torchEngine({ run: new RunDir('unused'), config, method, normalization });
  const onnxRun = await onnxEngine(bytes, modelInfoFromBytes(bytes, 'exported'));
  const x = image(seed);
  const normalised = new Float32Array(x.length);
  new Normalizer(normalization, C, S).apply(x, normalised);
  try {
    return { onnx: await onnxRun.predict(x, 1), torch: await torch.predict(normalised, 1), annotators: onnxRun.annotators };
  } finally {
    await onnxRun.dispose();
  }
}

/** Largest |ONNX − libtorch| over every exported map of one image. */
async function maxDifference(method: Method, config: RunConfig, normalization: Normalization, bytes: Uint8Array): Promise<number> {
  const { onnx: a, torch: b, annotators } = await predictBoth(method, config, normalization, bytes);
  let worst = 0;
  const compare = (p: Float32Array, q: Float32Array) => {
    for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i] - q[i]));
  };
  STRUCTURES.forEach((_, s) => {
    compare(a.calibrated(0, s), b.calibrated(0, s));
    for (const k of annotators) compare(a.annotator(0, k, s), b.annotator(0, k, s));
  });
  return worst;
}

for (const name of METHODS) {
  test(`${name}: onnxruntime-node gives libtorch's maps`, async (t) => {
    const { method, config } = randomMethod(name);
    const normalization = perPixelNormalization(5);
    try {
      const { bytes, info } = exportMethod(method, { config, normalization });
      assert.deepEqual(info.outputs.map((o) => o.name), ['disc_mean', 'disc_A1', 'disc_A2', 'disc_A3', 'cup_mean', 'cup_A1', 'cup_A2', 'cup_A3']);
      const worst = await maxDifference(method, config, normalization, bytes);
      t.diagnostic(`${name}: max abs difference ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-4, `${name}: max abs difference ${worst}`);
    } finally {
      method.model.dispose();
    }
  });
}

test('the metadata describes the file, and carries the run config and normalisation', () => {
  const { method, config } = randomMethod('mv-unet');
  const normalization: Normalization = { kind: 'per-channel', mean: [0.4, 0.3, 0.2], std: [0.2, 0.25, 0.3] };
  try {
    const { bytes, info } = exportMethod(method, { config, normalization }, { annotators: [3, 1] });
    const read = modelInfoFromBytes(bytes, 'x.onnx');
    assert.deepEqual(read, info);
    assert.equal(read.method, 'mv-unet');
    assert.deepEqual(read.input, { name: 'image', size: S, channels: C, range: [0, 1], normalization: 'in-graph' });
    assert.deepEqual(read.config, JSON.parse(JSON.stringify(config)));
    assert.deepEqual(read.normalization, normalization);
    assert.deepEqual(read.outputs.filter((o) => o.structure === 'cup'), [
      { name: 'cup_mean', structure: 'cup', annotator: null }, { name: 'cup_A3', structure: 'cup', annotator: 3 }, { name: 'cup_A1', structure: 'cup', annotator: 1 },
    ]);
    const model = onnx.ModelProto.decode(bytes);
    assert.equal(Number(model.opsetImport[0].version), 17);
    assert.deepEqual((model.graph as onnx.GraphProto).output.map((o) => o.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue))), Array(6).fill([1, S, S]));
    assert.throws(() => modelInfoFromBytes(onnx.ModelProto.encode({ ...model, metadataProps: [] }).finish(), 'plain.onnx'), /plain.onnx: an ONNX model, but not one exported by avap/);
    assert.throws(() => modelInfoFromBytes(Buffer.from('not a model at all'), 'junk.onnx'), (e: Error) => e instanceof UserError && /junk.onnx/.test(e.message));
  } finally {
    method.model.dispose();
  }
});

test("AVAP's dynamic head exports as convolutions whose weights are the controller's output, not per-annotator copies", async () => {
  const { method, config } = randomMethod('avap');
  const normalization = perPixelNormalization(6);
  try {
    const { bytes } = exportMethod(method, { config, normalization });
    const graph = onnx.ModelProto.decode(bytes).graph as onnx.GraphProto;
    const initializers = new Map(graph.initializer.map((t) => [t.name!, t]));
    const dynamic = graph.node.filter((n) => n.opType === 'Conv' && !initializers.has(n.input![1]));
    const group = (n: onnx.INodeProto) => Number(n.attribute!.find((a) => a.name === 'group')!.i);
    assert.deepEqual(dynamic.map(group), [1, 3, 3], 'layer 1 per image (groups = B = 1), layers 2–3 per annotator (groups = B·M = 3)');
    // Tracing back from each dynamic weight reaches the controller's convolution.
    const producer = new Map(graph.node.flatMap((n) => n.output!.map((o) => [o, n] as const)));
    const reaches = (value: string, target: string, depth = 0): boolean => {
      const n = producer.get(value);
      return !!n && depth < 20 && n.input!.some((x) => x === target || reaches(x, target, depth + 1));
    };
    for (const conv of dynamic) assert.ok(reaches(conv.input![1], 'apm.controller.weight'), `${conv.name}'s weights come from the controller`);
    // The file holds each parameter once: nothing is unrolled per annotator.
    const elements = (name: string) => (initializers.get(name)!.dims as number[]).reduce((a, b) => Number(a) * Number(b), 1);
    const stored = [...initializers.keys()].reduce((n, k) => n + elements(k), 0);
    const state = [...method.model.namedParameters(), ...method.model.namedBuffers()].filter(([k]) => !k.endsWith('num_batches_tracked'));
    const constants = 2 * C * S * S + 4096; // the normalisation, shapes, axes and the one-hot codes
    assert.ok(stored <= state.reduce((n, [, p]) => n + p.numel(), 0) + constants, `initializers hold ${stored} values`);
    assert.ok(state.every(([k]) => initializers.has(k) || !k.startsWith('apm.controller')), 'the controller is stored under its own name');
  } finally {
    method.model.dispose();
  }
});

test('an annotator subset, opset 18, argmax calibration and code-only conditioning export equivalently', async () => {
  const variants: [string, Record<string, unknown>, { annotators?: number[]; opset?: number }][] = [
    ['subset 1,3', {}, { annotators: [1, 3] }],
    ['opset 18', { conditioning: 'code' }, { opset: 18 }],
  ];
  for (const [what, extra, opts] of variants) {
    const { method, config } = randomMethod('avap', extra);
    const normalization = perPixelNormalization(8);
    try {
      const { bytes, info } = exportMethod(method, { config, normalization }, opts);
      if (opts.annotators) assert.deepEqual(info.outputs.map((o) => o.name), ['disc_mean', 'disc_A1', 'disc_A3', 'cup_mean', 'cup_A1', 'cup_A3']);
      const worst = await maxDifference(method, config, normalization, bytes);
      assert.ok(worst <= 1e-4, `${what}: max abs difference ${worst}`);
    } finally {
      method.model.dispose();
    }
  }
  // argmax calibration: the same count class nearly everywhere (a float-level near-tie may flip a pixel by 1/M).
  const { method, config } = randomMethod('avap', { calibration: 'argmax' });
  const normalization = perPixelNormalization(9);
  // Random weights leave one count class ahead everywhere; sharper class logits make the map vary.
  noGrad(() => tidy(() => {
    for (const [key, w] of method.model.namedParameters()) if (/^avm\.branches\.\d+\.12\.weight$/.test(key)) w.copy_(w.mul(30));
  }));
  try {
    const { bytes } = exportMethod(method, { config, normalization });
    const { onnx: p, torch: q } = await predictBoth(method, config, normalization, bytes, 12);
    const [a, b] = [[...p.calibrated(0, 0), ...p.calibrated(0, 1)], [...q.calibrated(0, 0), ...q.calibrated(0, 1)]];
    const same = a.filter((v, i) => Math.abs(v - b[i]) < 1e-6).length;
    assert.ok(same >= 0.999 * a.length, `${same} of ${a.length} pixels agree`);
    assert.ok(new Set(a).size > 1, 'the map is not constant');
  } finally {
    method.model.dispose();
  }
});

test('bad export options and clashing output names are one-line errors', () => {
  const { method, config } = randomMethod('mv-unet');
  const normalization: Normalization = { kind: 'imagenet' };
  try {
    assert.throws(() => exportMethod(method, { config, normalization }, { opset: 11 }), /--opset must be an integer in 13\.\.21, got 11/);
    assert.throws(() => exportMethod(method, { config, normalization }, { annotators: [4] }), /--annotators: 4 is not an annotator of this model \(1\.\.3\)/);
  } finally {
    method.model.dispose();
  }
  assert.equal(outputName('optic disc', 'Dr. Ng'), 'optic_disc_Dr._Ng');
  const clash = randomMethod('mv-unet', {}, ['a b', 'a_b']);
  try {
    assert.throws(() => exportMethod(clash.method, { config: clash.config, normalization }), /two outputs would both be named 'disc_a_b'/);
  } finally {
    clash.method.model.dispose();
  }
});

test('export leaves no tensors behind', () => {
  const { method, config } = randomMethod('avap');
  try {
    const live = memory().tensors;
    exportMethod(method, { config, normalization: { kind: 'imagenet' } });
    assert.equal(memory().tensors, live);
  } finally {
    method.model.dispose();
  }
});

test('a gated AVAP (some annotators at the consensus, some at the common departure) exports to the same maps', async () => {
  const { method, config } = randomMethod('avap');
  const normalization = perPixelNormalization(8);
  const r = prng(9);
  try {
    const { model } = method as AvapMethod;
    noGrad(() => tidy(() => {
      // Departures that differ between annotators, so the gate's choice shows in the maps.
      for (const [key, t] of model.apm.namedParameters()) if (key.startsWith('controller')) t.copy_(tensor(Float32Array.from({ length: t.numel() }, () => 0.6 * (r() - 0.5)), t.shape));
      model.gate.common.copy_(tensor(Float32Array.from([0, 0, 1, 1, 1, 1]), [3, 2]));
      model.gate.own.copy_(tensor(Float32Array.from([0, 0, 0, 0.5, 1, 1]), [3, 2]));
    }));
    const { bytes } = exportMethod(method, { config, normalization });
    const worst = await maxDifference(method, config, normalization, bytes);
    assert.ok(worst <= 1e-4, `max abs difference ${worst}`);
    const { torch } = await predictBoth(method, config, normalization, bytes);
    let spread = 0;
    for (let i = 0; i < S * S; i++) spread = Math.max(spread, Math.abs(torch.annotator(0, 1, 1)[i] - torch.annotator(0, 3, 1)[i]));
    assert.ok(spread > 1e-3, 'A1 (consensus) and A3 (own departure) differ');
  } finally {
    method.model.dispose();
  }
});
