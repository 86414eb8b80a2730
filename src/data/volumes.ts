/**
 * 3D volumes (QUBIQ 2021's pancreas and pancreatic-lesion: a CT volume per case and a mask volume per
 * task and rater) trained and predicted slice by slice.
 *
 * A volume case becomes one 2D case per slice across the slice axis (0 = x, 1 = y, 2 = z; by default
 * z, the last voxel axis, which is the acquisition's slowest). The slice's width and height are the
 * other two axes in storage order, so a prediction is written back voxel for voxel. The slice cases
 * keep the volume's files; reading one goes through a cache of decoded volumes, bounded by the
 * per-image memory budget (AVAP_IMAGE_MEMORY_MB), that holds each volume normalised and encoded at
 * 2 bytes per voxel and channel and each rater's masks packed at 1 byte per voxel, so a volume is
 * decoded once for all its slices while it stays in the cache.
 *
 * Intensities follow ./intensity.ts with the volume as the image: a CT channel with the dataset's rule,
 * any other z-scored over the whole volume (as nnU-Net does), not per slice.
 *
 * Training keeps every slice that any rater marks and a fixed share (EMPTY_SLICE_RATE by default) of
 * the slices no rater marks, drawn by the run's seed. Validation and prediction use every
 * slice; the QUBIQ score and soft Dice are computed over the whole volume.
 */
import { UserError } from '../errors';
import { imageMemoryBudget, RawImage } from '../io/image';
import { NIFTI_DATATYPES, readNifti, readNiftiShape } from '../io/nifti';
import { formatBytes } from '../io/readBounded';
import { Rng } from '../util/random';
import type { CaseAnnotations, CaseRecord, Dataset, Problem, VolumeShape } from './dataset';
import { ChannelIntensity, finiteMeanSd, Intensity, normalizeChannel } from './intensity';
import { encodeZ } from './niftiImage';

export const AXIS_NAMES = ['x', 'y', 'z'] as const;
/** The slice axis when none is named: z, NIfTI's slowest voxel axis (the acquisition's slices). */
export const DEFAULT_SLICE_AXIS = 2;
/** The share of the slices no rater marks that training keeps (all marked slices are kept). */
export const EMPTY_SLICE_RATE = 0.1;

/** `--slice-axis`: x, y, z or 0, 1, 2. */
export function parseSliceAxis(flag: string, raw: string): number {
  const byName = (AXIS_NAMES as readonly string[]).indexOf(raw.toLowerCase());
  if (byName >= 0) return byName;
  if (/^\d+$/.test(raw) && Number(raw) <= 2) return Number(raw);
  throw new UserError(`${flag} must be a voxel axis of a 3D volume (x, y, z or 0, 1, 2), got '${raw}'`);
}

/** A volume's x, y, z and channels from a NIfTI shape (a 4th axis, or any one beyond z, is the channels). */
export function volumeShape(file: string, shape: number[]): VolumeShape {
  const [x, y = 1, z = 1, ...rest] = shape;
  const extra = rest.filter((n) => n !== 1);
  if (extra.length > 1) throw new UserError(`${file}: a ${shape.join('×')} volume has more than one axis beyond x, y and z (at most one, its channels)`);
  return { shape: [x, y, z], channels: extra[0] ?? 1 };
}

/** Does a mask of this shape hold more than one slice (a 3D mask, so its case is a volume)? */
export function isVolumeMask(shape: number[]): boolean {
  return shape.length >= 3 && shape[2] > 1;
}

const voxelsOf = (s: VolumeShape) => s.shape[0] * s.shape[1] * s.shape[2];
const shapeText = (s: VolumeShape) => `${s.shape.join('×')}${s.channels > 1 ? `×${s.channels}` : ''}`;

/**
 * The memory reading a volume takes at its peak (its decoded voxels at their own type, the normalised
 * copy at 2 bytes): refused over the per-image budget, from the header alone.
 */
function checkVolumeMemory(file: string, s: VolumeShape, bytesPerVoxel: number): void {
  const bytes = voxelsOf(s) * s.channels * (bytesPerVoxel + 2);
  const budget = imageMemoryBudget();
  if (bytes > budget) {
    throw new UserError(`${file}: a ${shapeText(s)} volume takes ${formatBytes(bytes)} to read, over the ${formatBytes(budget)} memory budget for one image (set AVAP_IMAGE_MEMORY_MB to raise it)`);
  }
}

/**
 * Replaces a QUBIQ dataset's volume cases by their slices across `axis` (default z). Every image and
 * mask header is read: a mask volume whose shape differs from its image's, a volume over the memory
 * budget, or channels that differ from the first image's become blocking problems naming the file.
 */
export async function sliceVolumeDataset(ds: Dataset, axis: number | undefined, problems: Problem[]): Promise<void> {
  const a = axis ?? DEFAULT_SLICE_AXIS;
  if (!(Number.isInteger(a) && a >= 0 && a <= 2)) throw new UserError(`--slice-axis: ${a} is out of range for a 3D volume (0, 1, 2: x, y, z)`);
  const blocking = (file: string, message: string) => problems.push({ file, message, blocking: true });
  const volumes: CaseRecord[] = [];
  const slices: CaseRecord[] = [];
  let channels: number | undefined;
  for (const c of ds.cases) {
    let volume: VolumeShape;
    try {
      const header = await readNiftiShape(c.image);
      volume = volumeShape(c.image, header.shape);
      checkVolumeMemory(c.image, volume, NIFTI_DATATYPES[header.datatype].bytes);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      blocking(c.image, err.message.replace(`${c.image}: `, ''));
      continue;
    }
    channels ??= volume.channels;
    if (volume.channels !== channels) blocking(c.image, `${volume.channels} channels, but the first case's image has ${channels}`);
    for (const file of (c.parts ?? []).flat()) {
      if (file === null) continue;
      try {
        const mask = volumeShape(file, (await readNiftiShape(file)).shape);
        if (mask.channels !== 1 || mask.shape.some((n, i) => n !== volume.shape[i])) blocking(file, `the mask volume is ${shapeText(mask)} but its image ${c.image} is ${volume.shape.join('×')}`);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        blocking(file, err.message.replace(`${file}: `, ''));
      }
    }
    const record = { ...c, volume };
    volumes.push(record);
    const width = String(volume.shape[a] - 1).length;
    for (let index = 0; index < volume.shape[a]; index++) {
      slices.push({ ...record, id: `${c.id}-${AXIS_NAMES[a]}${String(index).padStart(width, '0')}`, slice: { volume: c.id, axis: a, index } });
    }
  }
  const byVolume = new Map<string, string[]>();
  for (const s of slices) {
    const list = byVolume.get(s.slice!.volume) ?? [];
    list.push(s.id);
    byVolume.set(s.slice!.volume, list);
  }
  for (const [split, ids] of Object.entries(ds.splits)) ds.splits[split] = ids.flatMap((id) => byVolume.get(id) ?? []);
  ds.volumes = volumes;
  ds.cases = slices;
  ds.sliceAxis = a;
  if (channels !== undefined) ds.channels = channels;
}

/** The volume cases the selected slice cases come from, in dataset order; other cases as they are. */
export function volumeCasesOf(ds: Dataset, cases: CaseRecord[]): CaseRecord[] {
  if (!ds.volumes) return cases;
  const wanted = new Set(cases.map((c) => c.slice?.volume ?? c.id));
  return ds.volumes.filter((v) => wanted.has(v.id));
}

/** Decoded volumes, least recently used dropped first once their bytes pass the per-image budget. */
class VolumeCache {
  private readonly entries = new Map<string, { value: Promise<Uint8Array | Uint16Array>; bytes: number }>();

  get<T extends Uint8Array | Uint16Array>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.value as Promise<T>;
    }
    const entry = { value: load() as Promise<Uint8Array | Uint16Array>, bytes: 0 };
    this.entries.set(key, entry);
    entry.value.then((v) => {
      entry.bytes = v.byteLength;
      this.evict(key);
    }, () => this.entries.delete(key));
    return entry.value as Promise<T>;
  }

  private evict(keep: string): void {
    const budget = imageMemoryBudget();
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    for (const [key, e] of this.entries) {
      if (total <= budget) break;
      if (key === keep || e.bytes === 0) continue;
      this.entries.delete(key);
      total -= e.bytes;
    }
  }
}

const cache = new VolumeCache();

/** A z-score over the whole volume, written as the equivalent unclipped rule. */
function perVolumeRule(values: ArrayLike<number>, file: string, channel: number): ChannelIntensity {
  const { mean, sd } = finiteMeanSd(values, file, channel);
  // A constant volume maps to 0 everywhere, as a constant image does.
  return { modality: 'CT', clip: [-Infinity, Infinity], mean, sd: sd > 0 ? sd : Infinity };
}

function checkShape(file: string, got: VolumeShape, want: VolumeShape, what: string): void {
  if (got.channels !== want.channels || got.shape.some((n, i) => n !== want.shape[i])) {
    throw new UserError(`${file}: ${what} is ${shapeText(got)} but the dataset recorded ${shapeText(want)} (was the file replaced?)`);
  }
}

/** The volume's channels normalised (channel-major, then x fastest) as the 16-bit codes of ./niftiImage.ts. */
function volumeImage(c: CaseRecord, intensity?: Intensity): Promise<Uint16Array> {
  const want = c.volume!;
  return cache.get(`image\0${c.image}\0${JSON.stringify(intensity ?? null)}`, async () => {
    const vol = await readNifti(c.image);
    const got = volumeShape(c.image, vol.shape);
    checkShape(c.image, got, want, 'the image');
    if (intensity && intensity.length !== got.channels) throw new UserError(`${c.image}: ${got.channels} channels, but the intensity rules recorded at training cover ${intensity.length}`);
    const n = voxelsOf(got);
    const plane = got.shape[0] * got.shape[1];
    const out = new Uint16Array(n * got.channels);
    for (let ch = 0; ch < got.channels; ch++) {
      const values = vol.data.subarray(ch * n, (ch + 1) * n);
      const given = intensity?.[ch];
      const rule = given?.modality === 'CT' ? given : perVolumeRule(values, c.image, ch);
      // Plane by plane: the float copy normalisation makes stays one slice large.
      for (let z = 0; z < got.shape[2]; z++) {
        const normalised = normalizeChannel(values.subarray(z * plane, (z + 1) * plane), rule, c.image, ch);
        for (let i = 0; i < plane; i++) out[ch * n + z * plane + i] = encodeZ(normalised[i]);
      }
    }
    return out;
  });
}

/** One rater's masks of a volume case packed as bits (task k = bit k), voxel order; missing task masks are empty. */
function volumeRater(c: CaseRecord, m: number): Promise<Uint8Array> {
  const files = c.parts![m];
  const want: VolumeShape = { shape: c.volume!.shape, channels: 1 };
  return cache.get(`rater\0${files.join('\0')}`, async () => {
    const bits = new Uint8Array(voxelsOf(want));
    for (let k = 0; k < files.length; k++) {
      const file = files[k];
      if (file === null) continue;
      const vol = await readNifti(file);
      const got = volumeShape(file, vol.shape);
      if (got.channels !== 1 || got.shape.some((n, i) => n !== want.shape[i])) throw new UserError(`${file}: the mask volume is ${shapeText(got)} but its image ${c.image} is ${want.shape.join('×')}`);
      const data = vol.data;
      for (let i = 0; i < bits.length; i++) if (data[i] > 0.5) bits[i] |= 1 << k;
    }
    return bits;
  });
}

/** Width, height and voxel strides of the slices across `axis`. */
function slicePlane(shape: [number, number, number], axis: number): { width: number; height: number; su: number; sv: number; sa: number } {
  const strides = [1, shape[0], shape[0] * shape[1]];
  const [u, v] = [0, 1, 2].filter((a) => a !== axis);
  return { width: shape[u], height: shape[v], su: strides[u], sv: strides[v], sa: strides[axis] };
}

/** Width and height of a volume's slices across `axis`. */
export function sliceSize(volume: VolumeShape, axis: number): { width: number; height: number } {
  const { width, height } = slicePlane(volume.shape, axis);
  return { width, height };
}

/** A slice case's image, normalised and interleaved as readNiftiImage gives a 2D image. */
export async function readSliceImage(c: CaseRecord, intensity?: Intensity): Promise<RawImage> {
  return sliceOfVolume(c, c.slice!.axis, c.slice!.index, intensity);
}

/** Slice `index` across `axis` of a volume case (or of a slice case's volume). */
export async function sliceOfVolume(c: CaseRecord, axis: number, index: number, intensity?: Intensity): Promise<RawImage> {
  const encoded = await volumeImage(c, intensity);
  const { shape, channels } = c.volume!;
  const n = voxelsOf(c.volume!);
  const { width, height, su, sv, sa } = slicePlane(shape, axis);
  const data = new Uint16Array(width * height * channels);
  for (let q = 0; q < height; q++) {
    for (let p = 0; p < width; p++) {
      const voxel = index * sa + p * su + q * sv;
      for (let ch = 0; ch < channels; ch++) data[(q * width + p) * channels + ch] = encoded[ch * n + voxel];
    }
  }
  return { width, height, channels, bitDepth: 16, data };
}

/** A slice case's rater `m` as a label map of task bits, as readQubiqRater gives a 2D case's. */
export async function readSliceRater(c: CaseRecord, m: number): Promise<{ width: number; height: number; values: Uint8Array }> {
  const bits = await volumeRater(c, m);
  const { width, height, su, sv, sa } = slicePlane(c.volume!.shape, c.slice!.axis);
  const values = new Uint8Array(width * height);
  const base = c.slice!.index * sa;
  for (let q = 0; q < height; q++) for (let p = 0; p < width; p++) values[q * width + p] = bits[base + p * su + q * sv];
  return { width, height, values };
}

/** Writes a slice's map (width × height, row-major) into a volume's map (x fastest) at `index` across `axis`. */
export function placeSlice(target: Float32Array, shape: [number, number, number], axis: number, index: number, map: ArrayLike<number>): void {
  const { width, height, su, sv, sa } = slicePlane(shape, axis);
  for (let q = 0; q < height; q++) for (let p = 0; p < width; p++) target[index * sa + p * su + q * sv] = map[q * width + p];
}

/**
 * A volume case's annotations over the whole volume (x fastest), for scores computed per volume:
 * `width` is x and `height` y·z.
 */
export async function readVolumeAnnotations(ds: Pick<Dataset, 'structures' | 'annotators'>, c: CaseRecord): Promise<CaseAnnotations> {
  const [x, y, z] = c.volume!.shape;
  const n = x * y * z;
  const masks = ds.annotators.map(() => ds.structures.map(() => new Uint8Array(n)));
  const available = c.labels.map((l) => l !== null);
  for (let m = 0; m < c.labels.length; m++) {
    if (!available[m]) continue;
    const bits = await volumeRater(c, m);
    for (let k = 0; k < ds.structures.length; k++) {
      const mask = masks[m][k];
      for (let i = 0; i < n; i++) mask[i] = (bits[i] >> k) & 1;
    }
  }
  return { width: x, height: y * z, available, masks };
}

/**
 * The training slices: every slice any rater marks, and round(rate × the others) of the slices no
 * rater marks, drawn over all volumes by `seed` (the same run, the same slices). Other cases stay.
 */
export async function sampleEmptySlices(cases: CaseRecord[], rate: number, seed: number): Promise<{ cases: CaseRecord[]; empty: number; kept: number }> {
  if (!(rate >= 0 && rate <= 1)) throw new UserError(`--empty-slice-rate: must be in [0, 1], got ${rate}`);
  const byVolume = new Map<string, CaseRecord[]>();
  for (const c of cases) if (c.slice) byVolume.set(c.slice.volume, [...(byVolume.get(c.slice.volume) ?? []), c]);
  const unmarked: CaseRecord[] = [];
  for (const slices of byVolume.values()) {
    const first = slices[0];
    const { shape } = first.volume!;
    const axis = first.slice!.axis;
    const marked = new Uint8Array(shape[axis]);
    const stride = axis === 0 ? 1 : axis === 1 ? shape[0] : shape[0] * shape[1];
    for (let m = 0; m < first.labels.length; m++) {
      if (first.labels[m] === null) continue;
      const bits = await volumeRater(first, m);
      for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) marked[Math.floor(i / stride) % shape[axis]] = 1;
    }
    unmarked.push(...slices.filter((s) => !marked[s.slice!.index]));
  }
  const kept = Math.round(rate * unmarked.length);
  const drop = new Set(Rng.from(seed, 'empty-slices').permutation(unmarked.length).slice(kept).map((i) => unmarked[i].id));
  return { cases: cases.filter((c) => !drop.has(c.id)), empty: unmarked.length, kept };
}

/**
 * Up to `perVolume` raw foreground intensities of each channel of the volumes the slice cases come
 * from (evenly strided; foreground = any rater marks the voxel), for the dataset's CT rule.
 */
export async function volumeForeground(cases: CaseRecord[], perVolume: number): Promise<number[][]> {
  const seen = new Set<string>();
  const samples: number[][] = [];
  for (const c of cases) {
    const id = c.slice?.volume ?? c.id;
    if (seen.has(id) || !c.volume) continue;
    seen.add(id);
    const n = voxelsOf(c.volume);
    const fg = new Uint8Array(n);
    for (let m = 0; m < c.labels.length; m++) {
      if (c.labels[m] === null) continue;
      const bits = await volumeRater(c, m);
      for (let i = 0; i < n; i++) if (bits[i] !== 0) fg[i] = 1;
    }
    const where: number[] = [];
    for (let i = 0; i < n; i++) if (fg[i]) where.push(i);
    const step = Math.max(1, where.length / perVolume);
    const raw = (await readNifti(c.image)).data;
    for (let ch = 0; ch < c.volume.channels; ch++) {
      samples[ch] ??= [];
      for (let j = 0; j < where.length; j += step) samples[ch].push(raw[ch * n + where[Math.floor(j)]]);
    }
  }
  return samples;
}
