/**
 * RIGA 'DiscRegion' → native layout (`avap data convert`).
 *
 * Images are copied byte for byte (no re-encoding, so nothing is lost). Each rater's mask is read with
 * the RIGA rule (disc = value > 0, cup = 255) and written as a canonical PNG label map: 0 background,
 * 128 disc rim, 255 cup — declared in dataset.json as disc {values [128], contains [cup]} and
 * cup {values [255]}. The fused FinalLabel (rater 0) is not an annotator and is not converted.
 * Case ids, annotator names (A1..AM), missing annotations, subsets and the paper's train/test split
 * carry over, so the converted dataset reads back with the same annotations.
 */
import * as fs from 'node:fs';
import { checkNewDatasetFolder } from '../io/outputFolder';
import * as path from 'node:path';
import { UserError } from '../errors';
import { writeFileAtomic, writeFileInNewFolder } from '../io/atomic';
import { encodePng, imageMemoryBudget, readImageInfo } from '../io/image';
import { displayPath, labelDecoderFor, openDataset, selectCases } from './dataset';
import { labelFileName } from './native';
import type { DatasetJsonInput } from './schema';
import { readBounded } from '../io/readBounded';

export const CONVERTED_LABELS = { background: 0, disc: 128, cup: 255 };

export interface ConvertOptions {
  /** RIGA subsets to convert (default: all the CSVs list). */
  subsets?: string[];
  onProgress?: (done: number, total: number) => void;
}

export async function convertRigaToNative(from: string, out: string, opts: ConvertOptions = {}): Promise<{ out: string; cases: number; missing: number; splits: Record<string, number> }> {
  const ds = await openDataset(from);
  if (ds.layout !== 'riga') throw new UserError(`${from}: is a ${ds.layout} dataset, not RIGA's DiscRegion layout (expected Glaucoma_multirater_<Subset>.csv files)`);
  const cases = selectCases(ds, { subsets: opts.subsets });
  const outDir = path.resolve(out);
  if (outDir === ds.root) throw new UserError(`${out}: the output folder must differ from the RIGA folder`);
  checkNewDatasetFolder(out, 'convert');
  fs.mkdirSync(path.join(outDir, 'images'), { recursive: true });
  fs.mkdirSync(path.join(outDir, 'labels'), { recursive: true });

  const decoder = labelDecoderFor(ds);
  const discBit = 1 << ds.structures.findIndex((s) => s.name === 'disc');
  const cupBit = 1 << ds.structures.findIndex((s) => s.name === 'cup');
  let next = 0;
  let done = 0;
  let missing = 0;
  let failed = false;
  const convertOne = async () => {
    while (next < cases.length && !failed) {
      const c = cases[next++];
      const ext = path.extname(c.image).toLowerCase();
      const info = await readImageInfo(c.image);
      writeFileInNewFolder(path.join(outDir, 'images', `${c.id}${ext}`), readBounded(c.image, imageMemoryBudget(), 'one image'));
      for (let m = 0; m < ds.annotators.length; m++) {
        const file = c.labels[m];
        if (file === null) {
          missing++;
          continue;
        }
        const label = await decoder.read(file, { width: info.width, height: info.height, imageFile: c.image });
        const bits = decoder.structureBits(label.values);
        const canonical = new Uint8Array(bits.length);
        for (let i = 0; i < bits.length; i++) {
          canonical[i] = bits[i] & cupBit ? CONVERTED_LABELS.cup : bits[i] & discBit ? CONVERTED_LABELS.disc : CONVERTED_LABELS.background;
        }
        const png = await encodePng({ width: label.width, height: label.height, channels: 1, bitDepth: 8, data: canonical });
        writeFileInNewFolder(path.join(outDir, 'labels', labelFileName(c.id, ds.annotators[m])), png);
      }
      opts.onProgress?.(++done, cases.length);
    }
  };
  // The first failure stops the other workers, and is reported once they have stopped writing.
  const settled = await Promise.allSettled(Array.from({ length: Math.min(4, cases.length) }, () => convertOne().catch((err) => {
    failed = true;
    throw err;
  })));
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;

  const ids = new Set(cases.map((c) => c.id));
  const subsetNames = [...new Set(cases.map((c) => c.subset!))];
  const subsets = Object.fromEntries(subsetNames.map((s) => [s, cases.filter((c) => c.subset === s).map((c) => c.id)]));
  const splits: Record<string, string[]> = {};
  const allSubsets = new Set(ds.cases.map((c) => c.subset));
  for (const [name, members] of Object.entries(ds.splits)) {
    if (allSubsets.has(name)) continue; // subsets go to "subsets", the rest (the paper's train/test) to "splits"
    const kept = members.filter((id) => ids.has(id));
    if (kept.length > 0) splits[name] = kept;
  }
  const json: DatasetJsonInput = {
    name: ds.name,
    description: `Converted by 'avap data convert' from RIGA (${displayPath(ds.root)}), subsets ${subsetNames.join(', ')}. Masks: disc = value > 0, cup = value 255, rewritten as 0/128/255.`,
    annotators: ds.annotators,
    structures: [
      { name: 'disc', values: [CONVERTED_LABELS.disc], contains: ['cup'] },
      { name: 'cup', values: [CONVERTED_LABELS.cup] },
    ],
    background: [CONVERTED_LABELS.background],
    channels: 3,
    splits,
    subsets,
  };
  writeFileAtomic(path.join(outDir, 'dataset.json'), `${JSON.stringify(json, null, 2)}\n`);
  return { out: outDir, cases: cases.length, missing, splits: Object.fromEntries(Object.entries({ ...splits, ...subsets }).map(([k, v]) => [k, v.length])) };
}
