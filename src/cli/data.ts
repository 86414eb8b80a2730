import * as path from 'node:path';
import { Command } from 'commander';
import { UserError } from '../errors';
import { checkDataset, formatCheckReport } from '../data/check';
import { convertRigaToNative } from '../data/convert';
import { displayPath, formatProblem } from '../data/dataset';
import { SYNTH_DEFAULTS, writeSynthDataset } from '../data/synth';
import { QUBIQ_SYNTH_VARIANTS, QubiqSynthVariant, writeQubiqSynth } from '../data/synthQubiq';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { parseIntFlag, splitList } from '../util/flags';
import { withProgress } from '../util/progress';

/** `avap data check`, `avap data convert`, `avap synth`. */
export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('inspect and convert multi-annotator datasets');

  data
    .command('check')
    .description('detect the layout of DIR, validate every file it references and print a summary (exits non-zero on problems)')
    .argument('<dir>', 'dataset folder (native layout, RIGA DiscRegion, or a QUBIQ dataset folder)')
    .action(async (dir: string) => {
      const report = await withProgress('checking', (onProgress) => checkDataset(dir, { onProgress }));
      if (!report.summary && report.problems.length === 1) throw new UserError(formatProblem(report.problems[0]));
      process.stdout.write(`${formatCheckReport(report)}\n`);
      if (!report.ok) {
        const n = report.problems.length;
        throw new UserError(`${displayPath(report.summary?.root ?? dir)}: ${n} problem${n === 1 ? '' : 's'} found`);
      }
    });

  data
    .command('convert')
    .description("convert RIGA's DiscRegion layout to the native layout")
    .requiredOption('--from <dir>', 'RIGA DiscRegion folder (holding Glaucoma_multirater_<Subset>.csv)')
    .requiredOption('--out <dir>', 'new folder for the native dataset (must not exist or be empty)')
    .option('--subsets <names...>', 'subsets to convert, e.g. BinRushed MESSIDOR (default: all)')
    .action(async (o: { from: string; out: string; subsets?: string[] }) => {
      const subsets = o.subsets?.flatMap(splitList).filter((s) => s !== '');
      checkOutputFolder('--out', o.out);
      const r = await withOutputRollback(o.out, () => withProgress('converting', (onProgress) => convertRigaToNative(o.from, o.out, { subsets, onProgress })));
      const splits = Object.entries(r.splits).map(([k, v]) => `${k} ${v}`).join(', ');
      process.stdout.write(`wrote ${r.cases} cases (${splits}; ${r.missing} missing annotations) to ${displayPath(r.out)}\n`);
    });

  program
    .command('synth')
    .description('write the built-in synthetic RIGA-like dataset (native layout, plus synth.json with the latent shapes and annotator styles)')
    .requiredOption('--out <dir>', 'new folder for the dataset (must not exist or be empty)')
    .option('--cases <n>', 'number of cases', String(SYNTH_DEFAULTS.cases))
    .option('--annotators <m>', 'number of simulated annotators', String(SYNTH_DEFAULTS.annotators))
    .option('--size <s>', 'image side in pixels', String(SYNTH_DEFAULTS.size))
    .option('--seed <k>', 'random seed', String(SYNTH_DEFAULTS.seed))
    .option('--train <n>', `cases in the train split, the rest are test (default: ${SYNTH_DEFAULTS.train}, at most cases - 1)`)
    .option('--layout <layout>', 'native, or qubiq (the QUBIQ challenge\'s folders of NIfTI files: OUT/synthetic-<variant>/{Training,Validation}/<case>/)', 'native')
    .option('--variant <v>', `with --layout qubiq: ${QUBIQ_SYNTH_VARIANTS.join(', ')} (see docs/data.md)`, 'mr')
    .option('--slices <n>', 'with --variant volume: slices per volume', '8')
    .action(async (o: { out: string; cases: string; annotators: string; size: string; seed: string; train?: string; layout: string; variant: string; slices: string }) => {
      const cases = parseIntFlag('--cases', o.cases, 1, 100000);
      const annotators = parseIntFlag('--annotators', o.annotators, 1, 64);
      const size = parseIntFlag('--size', o.size, 32, 4096);
      const seed = parseIntFlag('--seed', o.seed, 0, 2 ** 32 - 1);
      const train = o.train !== undefined ? parseIntFlag('--train', o.train, 1, cases) : undefined;
      const slices = parseIntFlag('--slices', o.slices, 1, 4096);
      const t0 = Date.now();
      if (o.layout !== 'native' && o.layout !== 'qubiq') throw new UserError(`--layout: '${o.layout}' is not a layout synth writes (native, qubiq)`);
      if (!(QUBIQ_SYNTH_VARIANTS as readonly string[]).includes(o.variant)) throw new UserError(`--variant: '${o.variant}' is not one of ${QUBIQ_SYNTH_VARIANTS.join(', ')}`);
      checkOutputFolder('--out', o.out);
      if (o.layout === 'qubiq') {
        const q = await withOutputRollback(o.out, () => withProgress('generating', (onProgress) => writeQubiqSynth({ out: o.out, variant: o.variant as QubiqSynthVariant, cases, annotators, size, seed, train, slices, onProgress })));
        const splits = Object.entries(q.splits).map(([k, v]) => `${k} ${v}`).join(', ');
        const shape = o.variant === 'volume' ? `1 task, ${size}x${size}x${slices}` : `2 tasks, ${size}x${size}`;
        process.stdout.write(`wrote ${q.cases} synthetic QUBIQ cases (${splits}), ${annotators} raters, ${shape}, to ${displayPath(path.join(q.out, q.dataset))} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
        return;
      }
      const r = await withOutputRollback(o.out, () => withProgress('generating', (onProgress) => writeSynthDataset({ out: o.out, cases, annotators, size, seed, train, onProgress })));
      const splits = Object.entries(r.splits).map(([k, v]) => `${k} ${v}`).join(', ');
      process.stdout.write(`wrote ${r.cases} synthetic cases (${splits}), ${r.annotators} annotators, ${r.size}x${r.size}, seed ${r.seed} to ${displayPath(r.out)} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    });
}
