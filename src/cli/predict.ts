import { Command } from 'commander';
import { UserError } from '../errors';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { loadRun } from '../predict/load';
import { listInputs, predictToFolder } from '../predict/predict';
import { parseIntFlag, setThreadsFlag } from './flags';

/** `avap predict`: parses flags and calls predictToFolder(). */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .description('write calibrated and per-annotator probability maps (16-bit PNG) and an overlay for each image')
    .requiredOption('--model <run>', 'a trained run folder (from avap train)')
    .requiredOption('--input <path>', 'an image, or a folder of images (a native dataset folder: its images/)')
    .requiredOption('--out <dir>', 'prediction folder: <case>/<structure>_mean.png, <case>/<structure>_annotator<k>.png, <case>/overlay.png')
    .option('--annotators <list>', "'all' or 1-based annotator numbers, e.g. 1,3", 'all')
    .option('--no-overlay', 'skip the overlay pictures')
    .option('--threads <n>', 'torch threads (default: all cores)')
    .action(async (o: { model: string; input: string; out: string; annotators: string; overlay: boolean; threads?: string }) => {
      await setThreadsFlag(o.threads);
      checkOutputFolder('--out', o.out);
      const inputs = listInputs(o.input);
      const annotators = o.annotators === 'all' ? undefined : o.annotators.split(',').map((x) => parseIntFlag('--annotators', x, 1, 1024));
      if (annotators && new Set(annotators).size !== annotators.length) throw new UserError(`--annotators lists an annotator twice: '${o.annotators}'`);
      const loaded = loadRun(o.model);
      try {
        // A failure (a full disk) removes what this command added; the manifest marks the rest unfinished.
        const n = await withOutputRollback(o.out, () => predictToFolder(loaded, inputs, o.out, { annotators, overlay: o.overlay }));
        process.stdout.write(`wrote predictions for ${n} image${n === 1 ? '' : 's'} to ${o.out}\n`);
      } finally {
        loaded.method.model.dispose();
      }
    });
}
