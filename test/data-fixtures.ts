/**
 * Fixture builders for the data tests: tiny real dataset folders (PNG files, CSVs, dataset.json)
 * written into fresh temp folders, and a CLI runner that captures output.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodePng } from '../src/io/image';

const created: string[] = [];
// Each test file runs in its own process: its fixture folders go when it ends.
process.on('exit', () => {
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

export function tmpDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `avap-${tag}-`));
  created.push(dir);
  return dir;
}

/** An 8-bit greyscale PNG from row-major values. */
export async function writeGrey(file: string, width: number, height: number, values: ArrayLike<number>): Promise<void> {
  if (values.length !== width * height) throw new Error(`writeGrey: ${values.length} values for ${width}x${height}`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, await encodePng({ width, height, channels: 1, bitDepth: 8, data: Uint8Array.from(values) }));
}

/** An 8-bit RGB PNG; `pixel(i)` gives pixel i's [r, g, b]. */
export async function writeRgb(file: string, width: number, height: number, pixel: (i: number) => [number, number, number]): Promise<void> {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(pixel(i), i * 3);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, await encodePng({ width, height, channels: 3, bitDepth: 8, data }));
}

export interface NativeSpec {
  json: Record<string, unknown>;
  /** case id -> image (written as images/<id>.png) */
  images: Record<string, { width: number; height: number; pixel?: (i: number) => [number, number, number] }>;
  /** "<case>_<annotator>" -> label values (written as labels/<case>_<annotator>.png) */
  labels: Record<string, { width: number; height: number; values: number[] }>;
}

export async function writeNative(dir: string, spec: NativeSpec): Promise<string> {
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'labels'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'dataset.json'), JSON.stringify(spec.json, null, 2));
  for (const [id, im] of Object.entries(spec.images)) await writeRgb(path.join(dir, 'images', `${id}.png`), im.width, im.height, im.pixel ?? ((i) => [i % 256, 100, 50]));
  for (const [name, l] of Object.entries(spec.labels)) await writeGrey(path.join(dir, 'labels', `${name}.png`), l.width, l.height, l.values);
  return dir;
}

/** The standard small native dataset: 2 annotators, disc (1) ⊃ cup (2), 4x4 images, one missing annotation. */
export function smallNativeSpec(): NativeSpec {
  const W = 4;
  // Row-major 4x4 label maps: 0 background, 1 disc rim, 2 cup.
  const a1 = [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 2, 0, 0, 0, 0, 0];
  const a2 = [0, 1, 1, 0, 1, 2, 2, 1, 1, 2, 2, 1, 0, 1, 1, 0];
  return {
    json: {
      name: 'small',
      annotators: ['A1', 'A2'],
      structures: [{ name: 'disc', values: [1], contains: ['cup'] }, { name: 'cup', values: [2] }],
      channels: 3,
      splits: { train: ['case1', 'case2'], test: ['case10'] },
    },
    images: { case1: { width: W, height: W }, case2: { width: W, height: W }, case10: { width: W, height: W } },
    labels: {
      case1_A1: { width: W, height: W, values: a1 },
      case1_A2: { width: W, height: W, values: a2 },
      case2_A1: { width: W, height: W, values: a2 },
      // case2_A2 missing on purpose
      case10_A1: { width: W, height: W, values: a1 },
      case10_A2: { width: W, height: W, values: a1 },
    },
  };
}

export interface RigaImage {
  subset: string;
  /** Relative path with Windows backslashes, as in the CSVs. */
  imgName: string;
  width: number;
  height: number;
  /** Mask values per rater, index 0 = FinalLabel; null = no row for that rater. */
  masks: (number[] | null)[];
}

export const RIGA_HEADER = ',imgName,maskName,label,center,xmin,ymin,xmax,ymax,width,height,discFlag,rater';

/** Mask path of a rater, next to the image: <dir>\<stem>-<rater>.png. */
export function rigaMaskName(imgName: string, rater: number): string {
  return imgName.replace(/\.[^.\\]+$/, `-${rater}.png`);
}

/**
 * Writes RIGA's DiscRegion layout: one Glaucoma_multirater_<Subset>.csv per subset (rows in the
 * published column order, backslash paths, CRLF when asked) and the image and mask files.
 */
export async function writeRiga(dir: string, images: RigaImage[], opts: { crlf?: boolean; header?: string } = {}): Promise<string> {
  const bySubset = new Map<string, RigaImage[]>();
  for (const im of images) bySubset.set(im.subset, [...(bySubset.get(im.subset) ?? []), im]);
  const eol = opts.crlf ? '\r\n' : '\n';
  for (const [subset, list] of bySubset) {
    const rows = [opts.header ?? RIGA_HEADER];
    let index = 0;
    for (const im of list) {
      const file = (rel: string) => path.join(dir, ...rel.split('\\'));
      await writeRgb(file(im.imgName), im.width, im.height, (i) => [200, 80 + (i % 50), 30]);
      for (let r = 0; r < im.masks.length; r++) {
        const values = im.masks[r];
        if (values === null) continue;
        const maskName = rigaMaskName(im.imgName, r);
        await writeGrey(file(maskName), im.width, im.height, values);
        rows.push(`${index++},${im.imgName},${maskName},0,"(${im.width / 2}, ${im.height / 2})",0,0,${im.width},${im.height},${im.width},${im.height},1,${r}`);
      }
    }
    fs.writeFileSync(path.join(dir, `Glaucoma_multirater_${subset}.csv`), rows.join(eol) + eol);
  }
  return dir;
}

/** A RIGA mask: background 0, disc rim `rim` (~128) in a centred square, cup 255 in its centre. */
export function rigaMask(size: number, discHalf: number, cupHalf: number, rim = 128): number[] {
  const c = size / 2;
  const out: number[] = [];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const d = Math.max(Math.abs(x + 0.5 - c), Math.abs(y + 0.5 - c));
      out.push(d < cupHalf ? 255 : d < discHalf ? rim : 0);
    }
  }
  return out;
}

/**
 * Runs the compiled CLI in a child process (as a user would) and returns its exit code and output.
 * Not in-process: the test runner reports through this process's stdout.
 */
export function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cli = path.join(__dirname, '..', 'src', 'cli', 'main.js');
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
