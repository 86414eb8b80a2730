// npm run bench:deploy — what deploying the default AVAP model costs on this machine: one-image inference
// at 256² with all M = 6 annotators on libtorch (the TypeScript model), onnxruntime-node (the exported
// file) and onnxruntime-web (the same file in the browser viewer, WASM, in Debian's headless Chromium),
// timed alternately in one run so that the machine's load affects all three alike; plus the ONNX file's
// size, the export time and the largest difference between the engines' maps.
// Every engine uses the same number of threads (AVAP_NUM_THREADS, default every core); with
// OMP_WAIT_POLICY=PASSIVE neither native engine spins between ops (for a machine shared with other jobs).
// Flags: --size 256 --reps 10 --encoder resnet34. Last line: one JSON object.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Normalization, Normalizer } from '../src/data/normalization';
import { writeSynthDataset } from '../src/data/synth';
import { exportMethod } from '../src/export/export';
import { buildMethod, methodConfigFor } from '../src/methods/registry';
import { EngineOutput, onnxEngine, torchEngine, unitInput } from '../src/predict/engine';
import { getNumThreads, manualSeed } from '../src/torch';
import { RunConfig, RunDir } from '../src/train/run';
import { serveSite } from '../src/viewer/server';
import { viewerSite } from '../src/viewer/site';
import { findChromium, launchChromium } from '../test/chromium';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const SIZE = Number(arg('size', '256'));
const REPS = Number(arg('reps', '10'));
const ENCODER = arg('encoder', 'resnet34');
const STRUCTURES = ['disc', 'cup'];
const ANNOTATORS = ['A1', 'A2', 'A3', 'A4', 'A5', 'A6'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Largest difference over every map of one image. */
function maxDifference(a: EngineOutput, b: (s: number, annotator: number | null) => ArrayLike<number>): number {
  let worst = 0;
  STRUCTURES.forEach((_, s) => {
    for (const k of [null, ...ANNOTATORS.map((_, i) => i + 1)]) {
      const [p, q] = [k === null ? a.calibrated(0, s) : a.annotator(0, k, s), b(s, k)];
      for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i] - q[i]));
    }
  });
  return worst;
}

async function main(): Promise<void> {
  const threads = getNumThreads();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-bench-deploy-'));
  await writeSynthDataset({ out: path.join(tmp, 'data'), cases: 1, annotators: ANNOTATORS.length, size: SIZE, seed: 1 });
  const imageFile = path.join(tmp, 'data', 'images', fs.readdirSync(path.join(tmp, 'data', 'images'))[0]);

  manualSeed(0);
  const model = methodConfigFor('avap', { structures: STRUCTURES, annotators: ANNOTATORS, inChannels: 3, encoder: ENCODER, steps: 1 }, { preferenceSteps: 1 });
  const method = buildMethod(model);
  const normalization: Normalization = { kind: 'imagenet' };
  const config = {
    version: 2, model, input: { size: SIZE, channels: 3 }, data: { root: '', name: 'bench', selection: {}, trainCases: [], valCases: [] },
    optimizer: { lr: 1e-4, weightDecay: 0, batchSize: 1, schedule: 'constant' }, seed: 0, augment: false, pretrained: null, precision: 'fp32',
  } as RunConfig;
  const started = process.hrtime.bigint();
  const exported = exportMethod(method, { config, normalization });
  const exportSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const fileMiB = exported.bytes.byteLength / 2 ** 20;
  console.log(`exported AVAP (${ENCODER}, ${SIZE}², M = ${ANNOTATORS.length}) in ${exportSeconds.toFixed(2)} s: ${fileMiB.toFixed(1)} MiB`);

  const unit = (await unitInput(imageFile, SIZE, 3)).input;
  const normalised = new Float32Array(unit.length);
  new Normalizer(normalization, 3, SIZE).apply(unit, normalised);
  const torch = torchEngine({ run: new RunDir(tmp), config, method, normalization });
  // One waiting policy for both native engines: OMP_WAIT_POLICY=PASSIVE (libtorch) also stops onnxruntime's spinning.
  const passive = process.env.OMP_WAIT_POLICY?.toUpperCase() === 'PASSIVE';
  const node = await onnxEngine(exported.bytes, exported.info, { spinning: !passive });

  const chromium = findChromium();
  let web: { infer: () => Promise<number>; outputs: Record<string, number[]>; close: () => Promise<void> } | null = null;
  if (chromium.executable) {
    const server = await serveSite(viewerSite(exported), 0);
    const browser = await launchChromium(chromium.executable);
    const page = await browser.context.newPage();
    await page.goto(`${server.url}?threads=${threads}`);
    const state = (wanted: string) => page.waitForFunction((s) => [s, 'error'].includes((globalThis as any).avapViewer.state), wanted, { timeout: 300_000 }); // eslint-disable-line @typescript-eslint/no-explicit-any
    await state('ready');
    await page.setInputFiles('#file', imageFile);
    await state('done');
    const error = await page.evaluate(() => (globalThis as any).avapViewer.error); // eslint-disable-line @typescript-eslint/no-explicit-any
    if (error) throw new Error(`viewer: ${error}`);
    web = {
      // Inference as the page runs it (input tensor in, every output back), timed inside the page.
      infer: async () => (await page.evaluate(() => (globalThis as any).avapViewer.timeInference(1)))[0], // eslint-disable-line @typescript-eslint/no-explicit-any
      outputs: await page.evaluate(() => Object.fromEntries(Object.entries((globalThis as any).avapViewer.outputs).map(([k, v]) => [k, Array.from(v as Float32Array)]))), // eslint-disable-line @typescript-eslint/no-explicit-any
      close: async () => {
        await browser.close();
        await server.close();
      },
    };
    console.log(`onnxruntime-web: ${await page.evaluate(() => (globalThis as any).avapViewer.threads)} thread(s) in Chromium`); // eslint-disable-line @typescript-eslint/no-explicit-any
  } else {
    console.log(`onnxruntime-web skipped: ${chromium.reason}`);
  }

  const engines: [string, () => Promise<number>][] = [
    ['libtorch', () => timed(() => torch.predict(normalised, 1))],
    ['onnxruntime-node', () => timed(() => node.predict(unit, 1))],
    ...(web ? [['onnxruntime-web', web.infer] as [string, () => Promise<number>]] : []),
  ];
  for (const [, run] of engines) await run(); // warm-up: first-run allocations, thread pools, JIT
  const times = new Map<string, number[]>(engines.map(([name]) => [name, []]));
  for (let r = 0; r < REPS; r++) for (const [name, run] of engines) times.get(name)!.push(await run());

  const reference = await torch.predict(normalised, 1);
  const nodeOut = await node.predict(unit, 1);
  const outputName = (s: number, k: number | null) => exported.info.outputs.find((o) => o.structure === STRUCTURES[s] && o.annotator === k)!.name;
  const diffNode = maxDifference(reference, (s, k) => (k === null ? nodeOut.calibrated(0, s) : nodeOut.annotator(0, k, s)));
  const diffWeb = web ? maxDifference(reference, (s, k) => web!.outputs[outputName(s, k)]) : null;

  const ms = Object.fromEntries([...times].map(([name, t]) => [name, median(t)]));
  for (const [name, t] of times) console.log(`${name.padEnd(17)} median ${median(t).toFixed(1)} ms, min ${Math.min(...t).toFixed(1)} ms over ${REPS}`);
  console.log(`max |difference| vs libtorch: onnxruntime-node ${diffNode.toExponential(2)}${diffWeb === null ? '' : `, onnxruntime-web ${diffWeb.toExponential(2)}`}`);
  await web?.close();
  await node.dispose();
  method.model.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  const round = (x: number | undefined | null, d = 1) => (x === undefined || x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
  console.log(JSON.stringify({
    bench: 'deploy', model: `avap ${ENCODER} ${SIZE}x${SIZE} M=${ANNOTATORS.length}`, threads, reps: REPS, cpus: os.cpus().length, wait_policy: passive ? 'passive' : 'spin',
    libtorch_ms: round(ms.libtorch), onnxruntime_node_ms: round(ms['onnxruntime-node']), onnxruntime_web_ms: round(ms['onnxruntime-web']),
    node_vs_libtorch: round(ms['onnxruntime-node'] / ms.libtorch, 2), web_vs_libtorch: ms['onnxruntime-web'] ? round(ms['onnxruntime-web'] / ms.libtorch, 2) : null,
    onnx_mib: round(fileMiB), export_s: round(exportSeconds, 2), max_abs_diff_node: diffNode, max_abs_diff_web: diffWeb,
    web_skipped: chromium.executable ? null : chromium.reason,
  }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
