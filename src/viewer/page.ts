// The browser viewer: runs an exported model in the page with onnxruntime-web (WASM), on an image the user
// drops or picks, and shows the image, the calibrated map or the annotators' disagreement as a heat
// overlay, each annotator's outline in its colour, and areas and cup-to-disc ratios per annotator.
// Everything is served by `avap view` (or written by `avap export --viewer`): nothing leaves the machine.
// window.avapViewer exposes the state and the raw outputs, for tests and for the curious.
import type * as OrtWeb from 'onnxruntime-web';
import type * as NiftiReader from 'nifti-reader-js';
import { annotatorColour, cupToDisc, displayMap, fitWithin, heatColour, modelInput, outlineMask, outlineThickness, spread, structureStats } from './render.js';
import { ChannelRule, niftiValues, sliceGrey, sliceInput, volumeCodes, volumeLayout } from './volume.js';

declare const ort: typeof OrtWeb;

/** The parts of the model's metadata (model.json, see src/export/metadata.ts) the page uses. */
interface ModelInfo {
  method: string;
  input: { name: string; size: number; channels: number };
  structures: string[];
  annotators: string[];
  outputs: { name: string; structure: string; annotator: number | null }[];
  /** How a NIfTI image's intensities are normalised (absent: a z-score per volume). */
  intensity?: ChannelRule[];
}

/** A NIfTI volume opened in the page: every x-y slice's model outputs, by output name. */
interface OpenedVolume {
  name: string;
  shape: [number, number, number];
  channels: number;
  /** The slice shown. */
  slice: number;
  /** Per slice z, the model input [C, S, S] and every output [S, S]. */
  inputs: Float32Array[];
  outputs: Record<string, Float32Array>[];
}

type Overlay = 'mean' | 'spread' | 'none';

interface View {
  overlay: Overlay;
  /** Index into structures: whose map the heat overlay shows. */
  structure: number;
  /** 'all', or one 1-based annotator number whose outlines are drawn. */
  annotator: 'all' | number;
  opacity: number;
}

interface Viewer {
  state: 'loading' | 'ready' | 'running' | 'done' | 'error';
  error: string | null;
  info: ModelInfo | null;
  threads: number;
  inferenceMs: number | null;
  /** The last image's model input [C, S, S] and every output [S, S] by output name. */
  input: Float32Array | null;
  outputs: Record<string, Float32Array>;
  image: { width: number; height: number } | null;
  display: { width: number; height: number } | null;
  view: View;
  /** The NIfTI volume last opened (null for a picture). */
  volume: OpenedVolume | null;
  setView(change: Partial<View>): void;
  /** Shows slice z of the opened volume. */
  setSlice(z: number): Promise<void>;
  /** Reruns inference on the last input `runs` times; milliseconds per run. */
  timeInference(runs: number): Promise<number[]>;
}

const DISPLAY_SIZE = 640;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let session: OrtWeb.InferenceSession | null = null;
let picture: ImageBitmap | null = null;
/** The opened volume's normalised codes (for drawing its slices). */
let volumeCodes_: Uint16Array | null = null;

const viewer: Viewer = {
  state: 'loading', error: null, info: null, threads: 1, inferenceMs: null, input: null, outputs: {}, image: null, display: null,
  view: { overlay: 'mean', structure: 0, annotator: 'all', opacity: 0.6 },
  volume: null,
  async setSlice(z) {
    const v = viewer.volume!;
    v.slice = Math.max(0, Math.min(v.shape[2] - 1, Math.round(z)));
    viewer.input = v.inputs[v.slice];
    viewer.outputs = v.outputs[v.slice];
    picture = await createImageBitmap(new ImageData(sliceGrey(volumeCodes_!, v.shape, v.slice) as Uint8ClampedArray<ArrayBuffer>, v.shape[0], v.shape[1]));
    $<HTMLInputElement>('slice').value = String(v.slice);
    $('slice-label').textContent = `slice z = ${v.slice} of ${v.shape[2]}`;
    draw();
  },
  setView(change) {
    Object.assign(viewer.view, change);
    syncControls();
    draw();
  },
  async timeInference(runs) {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await infer(viewer.input!);
      times.push(performance.now() - started);
    }
    return times;
  },
};
(window as unknown as { avapViewer: Viewer }).avapViewer = viewer;

function setStatus(text: string): void {
  $('status').textContent = text;
}

function fail(err: unknown): void {
  viewer.state = 'error';
  viewer.error = err instanceof Error ? err.message : String(err);
  setStatus(`Error: ${viewer.error}`);
}

function outputName(structure: number, annotator: number | null): string {
  const info = viewer.info!;
  return info.outputs.find((o) => o.structure === info.structures[structure] && o.annotator === annotator)!.name;
}

function exportedAnnotators(): number[] {
  return [...new Set(viewer.info!.outputs.flatMap((o) => (o.annotator === null ? [] : [o.annotator])))].sort((a, b) => a - b);
}

async function boot(): Promise<void> {
  const info = (await (await fetch('model.json')).json()) as ModelInfo;
  viewer.info = info;
  const requested = Number(new URLSearchParams(location.search).get('threads'));
  viewer.threads = crossOriginIsolated ? (requested > 0 ? requested : Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
  ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
  ort.env.wasm.numThreads = viewer.threads;
  buildControls(info);
  setStatus('Loading the model…');
  session = await ort.InferenceSession.create('model.onnx', { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  viewer.state = 'ready';
  setStatus(`Ready: drop a fundus image or choose one (${viewer.threads} thread${viewer.threads === 1 ? '' : 's'}).`);
}

function buildControls(info: ModelInfo): void {
  const { size, channels } = info.input;
  $('model').textContent = `${info.method} · input ${size}×${size}×${channels} · ${info.structures.join(', ')} · ${info.annotators.length} annotators`;
  const structure = $<HTMLSelectElement>('structure');
  info.structures.forEach((s, i) => structure.add(new Option(s, String(i))));
  structure.addEventListener('change', () => viewer.setView({ structure: Number(structure.value) }));
  const annotators = $('annotators');
  const choice = (value: string, label: string, colour: [number, number, number] | null) => {
    const item = document.createElement('label');
    const radio = Object.assign(document.createElement('input'), { type: 'radio', name: 'annotator', value });
    radio.addEventListener('change', () => viewer.setView({ annotator: value === 'all' ? 'all' : Number(value) }));
    item.append(radio);
    if (colour) item.append(Object.assign(document.createElement('span'), { className: 'swatch', style: `background: rgb(${colour.join(',')})` }));
    item.append(label);
    annotators.append(item);
  };
  choice('all', 'all annotators', null);
  for (const k of exportedAnnotators()) choice(String(k), info.annotators[k - 1], annotatorColour(k));
  for (const radio of document.querySelectorAll<HTMLInputElement>('input[name=overlay]')) {
    radio.addEventListener('change', () => viewer.setView({ overlay: radio.value as Overlay }));
  }
  const opacity = $<HTMLInputElement>('opacity');
  opacity.addEventListener('input', () => viewer.setView({ opacity: Number(opacity.value) / 100 }));
  const slice = $<HTMLInputElement>('slice');
  slice.addEventListener('input', () => void viewer.setSlice(Number(slice.value)).catch(fail));
  const file = $<HTMLInputElement>('file');
  file.addEventListener('change', () => file.files?.[0] && open(file.files[0]));
  const stage = $('stage');
  stage.addEventListener('dragover', (e) => {
    e.preventDefault();
    stage.classList.add('dragging');
  });
  stage.addEventListener('dragleave', () => stage.classList.remove('dragging'));
  stage.addEventListener('drop', (e) => {
    e.preventDefault();
    stage.classList.remove('dragging');
    const dropped = e.dataTransfer?.files?.[0];
    if (dropped) open(dropped);
  });
  syncControls();
}

function syncControls(): void {
  const v = viewer.view;
  $<HTMLSelectElement>('structure').value = String(v.structure);
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name=annotator]')) r.checked = r.value === String(v.annotator);
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name=overlay]')) r.checked = r.value === v.overlay;
  $<HTMLInputElement>('opacity').value = String(Math.round(v.opacity * 100));
}

async function infer(input: Float32Array): Promise<Record<string, Float32Array>> {
  const { name, size, channels } = viewer.info!.input;
  const results = await session!.run({ [name]: new ort.Tensor('float32', input, [1, channels, size, size]) });
  const outputs: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(results)) outputs[k] = t.data as Float32Array;
  return outputs;
}

function isNifti(file: Blob): file is File {
  return file instanceof File && /\.nii(\.gz)?$/i.test(file.name);
}

/**
 * nifti-reader-js, served by the viewer (lib/), loaded when the first NIfTI file is opened. Its URL is
 * built at run time so that TypeScript leaves the import to the browser.
 */
function niftiReader(): Promise<typeof NiftiReader> {
  const url = new URL('lib/nifti-reader-js/nifti.js', location.href).href;
  return import(url) as Promise<typeof NiftiReader>;
}

/** A NIfTI image (2D or 3D): the model runs on every x-y slice, as `avap predict --format qubiq` does. */
async function openNifti(file: File): Promise<void> {
  const lib = await niftiReader();
  let bytes = await file.arrayBuffer();
  if (lib.isCompressed(bytes)) bytes = lib.decompress(bytes) as ArrayBuffer;
  if (!lib.isNIFTI(bytes)) throw new Error(`${file.name}: not a NIfTI-1 or NIfTI-2 file`);
  const header = lib.readHeader(bytes);
  const rank = header.dims[0];
  const { shape, channels } = volumeLayout(header.dims.slice(1, rank + 1));
  const info = viewer.info!;
  if (channels !== info.input.channels) throw new Error(`${file.name}: ${channels} channel(s), the model takes ${info.input.channels}`);
  const values = niftiValues(header, lib.readImage(header, bytes));
  const voxels = shape[0] * shape[1] * shape[2];
  volumeCodes_ = volumeCodes(values, voxels, channels, info.intensity);
  const volume: OpenedVolume = { name: file.name, shape, channels, slice: 0, inputs: [], outputs: [] };
  const started = performance.now();
  for (let z = 0; z < shape[2]; z++) {
    setStatus(`Running the model on slice ${z + 1} of ${shape[2]}…`);
    const input = sliceInput(volumeCodes_, shape, channels, z, info.input.size);
    volume.inputs.push(input);
    volume.outputs.push(await infer(input));
  }
  viewer.inferenceMs = (performance.now() - started) / shape[2];
  viewer.volume = volume;
  viewer.image = { width: shape[0], height: shape[1] };
  const slider = $<HTMLInputElement>('slice');
  slider.max = String(shape[2] - 1);
  $('slice-control').hidden = shape[2] < 2;
  $('stage').classList.add('loaded');
  await viewer.setSlice(Math.floor(shape[2] / 2));
  viewer.state = 'done';
  setStatus(`${file.name}: ${shape.join('×')} volume · ${shape[2]} slice${shape[2] === 1 ? '' : 's'}, ${viewer.inferenceMs.toFixed(0)} ms each in the browser (onnxruntime-web, WASM, ${viewer.threads} thread${viewer.threads === 1 ? '' : 's'})`);
}

async function open(file: Blob): Promise<void> {
  try {
    if (!session) throw new Error('the model is not loaded yet');
    if (isNifti(file)) {
      viewer.state = 'running';
      await openNifti(file);
      return;
    }
    viewer.volume = null;
    $('slice-control').hidden = true;
    viewer.state = 'running';
    setStatus('Running the model…');
    picture = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const { width, height } = picture;
    const scratch = Object.assign(document.createElement('canvas'), { width, height });
    const ctx = scratch.getContext('2d', { willReadFrequently: true })!;
    ctx.drawImage(picture, 0, 0);
    const { size, channels } = viewer.info!.input;
    viewer.input = modelInput(ctx.getImageData(0, 0, width, height).data, width, height, size, channels);
    const started = performance.now();
    viewer.outputs = await infer(viewer.input);
    viewer.inferenceMs = performance.now() - started;
    viewer.image = { width, height };
    $('stage').classList.add('loaded');
    draw();
    viewer.state = 'done';
    setStatus(`${width}×${height} image · inference ${viewer.inferenceMs.toFixed(0)} ms in the browser (onnxruntime-web, WASM, ${viewer.threads} thread${viewer.threads === 1 ? '' : 's'})`);
  } catch (err) {
    fail(err);
  }
}

function draw(): void {
  if (!picture || !viewer.image) return;
  const info = viewer.info!;
  const S = info.input.size;
  const { width: W, height: H } = viewer.image;
  const d = fitWithin(W, H, DISPLAY_SIZE);
  viewer.display = d;
  const canvases = ['image', 'heat', 'outline'].map((id) => Object.assign($<HTMLCanvasElement>(id), { width: d.width, height: d.height }));
  canvases[0].getContext('2d')!.drawImage(picture, 0, 0, d.width, d.height);

  const v = viewer.view;
  const annotators = exportedAnnotators();
  const heat = canvases[1].getContext('2d')!;
  if (v.overlay !== 'none') {
    // Disagreement is shown on the same 0..1 scale: the largest possible spread of 0/1 votes is 0.5.
    const map = v.overlay === 'mean'
      ? viewer.outputs[outputName(v.structure, null)]
      : spread(annotators.map((k) => viewer.outputs[outputName(v.structure, k)])).map((x) => x * 2);
    const shown = displayMap(map, S, d.width, d.height);
    const img = heat.createImageData(d.width, d.height);
    for (let i = 0; i < shown.length; i++) img.data.set(heatColour(shown[i], v.opacity), i * 4);
    heat.putImageData(img, 0, 0);
  }

  const outline = canvases[2].getContext('2d')!;
  const img = outline.createImageData(d.width, d.height);
  const thickness = outlineThickness(d.width, d.height);
  for (const k of v.annotator === 'all' ? annotators : [v.annotator]) {
    const colour = annotatorColour(k);
    info.structures.forEach((_, s) => {
      const mask = outlineMask(displayMap(viewer.outputs[outputName(s, k)], S, d.width, d.height), d.width, d.height, thickness);
      for (let i = 0; i < mask.length; i++) if (mask[i]) img.data.set([...colour, 255], i * 4);
    });
  }
  outline.putImageData(img, 0, 0);
  $('legend').textContent = v.overlay === 'mean' ? `heat: calibrated ${info.structures[v.structure]} map (0 → 1)`
    : v.overlay === 'spread' ? `heat: annotators' disagreement on ${info.structures[v.structure]} (spread 0 → 0.5)` : '';
  drawStats();
}

function drawStats(): void {
  const info = viewer.info!;
  const S = info.input.size;
  const { width: W, height: H } = viewer.image!;
  const disc = info.structures.findIndex((s) => s.toLowerCase() === 'disc');
  const cup = info.structures.findIndex((s) => s.toLowerCase() === 'cup');
  const ratios = disc >= 0 && cup >= 0;
  const head = ['', ...info.structures.map((s) => `${s} area (px)`), ...(ratios ? ['vertical CDR', 'area CDR'] : [])];
  const rows: { label: string; colour: [number, number, number] | null; cells: string[]; vertical: number | null }[] = [];
  const row = (label: string, annotator: number | null, colour: [number, number, number] | null) => {
    const stats = info.structures.map((_, s) => structureStats(viewer.outputs[outputName(s, annotator)], S, W, H));
    const cdr = ratios ? cupToDisc(stats[disc], stats[cup]) : null;
    const fmt = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(2));
    rows.push({ label, colour, vertical: cdr?.vertical ?? null, cells: [...stats.map((st) => Math.round(st.area).toLocaleString('en')), ...(cdr ? [fmt(cdr.vertical), fmt(cdr.area)] : [])] });
  };
  row('calibrated', null, null);
  for (const k of exportedAnnotators()) row(info.annotators[k - 1], k, annotatorColour(k));
  const table = $<HTMLTableElement>('stats');
  table.replaceChildren();
  const tr = table.createTHead().insertRow();
  for (const h of head) tr.append(Object.assign(document.createElement('th'), { textContent: h }));
  const body = table.createTBody();
  for (const r of rows) {
    const line = body.insertRow();
    line.dataset.label = r.label;
    const name = line.insertCell();
    if (r.colour) name.append(Object.assign(document.createElement('span'), { className: 'swatch', style: `background: rgb(${r.colour.join(',')})` }));
    name.append(r.label);
    for (const c of r.cells) line.insertCell().textContent = c;
  }
  const verticals = rows.slice(1).map((r) => r.vertical).filter((x): x is number => x !== null);
  $('cdr-range').textContent = ratios && verticals.length > 1
    ? `Vertical CDR across annotators: ${Math.min(...verticals).toFixed(2)} – ${Math.max(...verticals).toFixed(2)}`
    : '';
}

boot().catch(fail);
