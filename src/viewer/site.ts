// The viewer as a set of files by URL path: the page (src/viewer/static and its compiled scripts),
// onnxruntime-web's WASM runtime from node_modules, and the model. `avap view` serves them;
// `avap export --viewer DIR` writes them to a folder any static web server can serve.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { pathInside } from '../io/confine';
import { ModelInfo } from '../export/metadata';

export interface SiteFile {
  /** URL path without the leading slash, e.g. "app/viewer/page.js". */
  path: string;
  type: string;
  /** A file on disk, or the bytes themselves. */
  source: string | Uint8Array;
}

const STATIC_DIR = path.resolve(__dirname, '../../../src/viewer/static');
const SCRIPTS_DIR = path.resolve(__dirname, '../../viewer-web');
/** The WASM-only build of onnxruntime-web and what it loads at run time (SIMD + threads). */
const ORT_FILES = ['ort.wasm.min.js', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.onnx': 'application/octet-stream',
};
const typeOf = (file: string) => TYPES[path.extname(file)] ?? 'application/octet-stream';

function filesUnder(dir: string, prefix: string): SiteFile[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return filesUnder(full, `${prefix}${e.name}/`);
    return [{ path: `${prefix}${e.name}`, type: typeOf(e.name), source: full }];
  });
}

/** The page's description of the model: what model.json holds (the full run config stays in the ONNX file). */
export function pageModelInfo(info: ModelInfo): Pick<ModelInfo, 'method' | 'input' | 'structures' | 'annotators' | 'outputs' | 'intensity'> {
  const { method, input, structures, annotators, outputs, intensity } = info;
  return { method, input, structures, annotators, outputs, ...(intensity ? { intensity } : {}) };
}

/**
 * The NIfTI reader the page loads for .nii/.nii.gz files: nifti-reader-js's ES modules and the one of
 * fflate (its gzip) written for browsers, which the page's import map names.
 */
function niftiReaderFiles(): SiteFile[] {
  // The package exports only its ES module entry, which require.resolve cannot name.
  const readerDir = (require.resolve.paths('nifti-reader-js') ?? []).map((p) => path.join(p, 'nifti-reader-js')).find((p) => fs.existsSync(path.join(p, 'dist', 'nifti.js')));
  if (!readerDir) throw new UserError('nifti-reader-js is not installed (npm install): the viewer reads NIfTI files with it');
  const fflate = path.join(path.dirname(require.resolve('fflate/package.json')), 'esm', 'browser.js');
  return [
    ...fs.readdirSync(path.join(readerDir, 'dist')).filter((f) => f.endsWith('.js')).map((f) => ({ path: `lib/nifti-reader-js/${f}`, type: typeOf(f), source: path.join(readerDir, 'dist', f) })),
    { path: 'lib/fflate/browser.js', type: typeOf(fflate), source: fflate },
  ];
}

export function viewerSite(model: { bytes: Uint8Array; info: ModelInfo }): SiteFile[] {
  if (!fs.existsSync(path.join(SCRIPTS_DIR, 'viewer', 'page.js'))) {
    throw new UserError(`the viewer's scripts are not built (${SCRIPTS_DIR} is missing): run 'bash scripts/setup.sh'`);
  }
  const ortDir = path.dirname(require.resolve('onnxruntime-web')); // its dist/ folder
  return [
    ...filesUnder(STATIC_DIR, ''),
    ...filesUnder(SCRIPTS_DIR, 'app/'),
    ...ORT_FILES.map((f) => ({ path: `ort/${f}`, type: typeOf(f), source: path.join(ortDir, f) })),
    ...niftiReaderFiles(),
    { path: 'model.onnx', type: typeOf('.onnx'), source: model.bytes },
    { path: 'model.json', type: typeOf('.json'), source: Buffer.from(JSON.stringify(pageModelInfo(model.info))) },
  ];
}

/**
 * Where each file of the site goes in `dir`, checked before anything is written: a symbolic link in
 * `dir` leading out of it is refused. Then `write()` writes them (the folder created if needed), each atomically.
 */
export function planSite(site: SiteFile[], dir: string): { write(): void } {
  const files = site.map((f) => ({ file: pathInside('--viewer', dir, ...f.path.split('/')), source: f.source }));
  return { write: () => files.forEach((f) => writeFileAtomic(f.file, typeof f.source === 'string' ? fs.readFileSync(f.source) : f.source)) };
}
