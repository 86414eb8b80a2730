import { Command } from 'commander';
import { UserError } from '../errors';
import { predict } from '../predict/predict';
import { plural } from '../util/format';
import { parseIntFlag, splitList } from '../util/flags';

/** `avap predict`: parses flags and calls predict(). */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .description('write calibrated and per-annotator probability maps (16-bit PNG) and an overlay for each image')
    .requiredOption('--model <run>', 'a trained run folder (from avap train)')
    .requiredOption('--input <path>', 'an image, or a folder of images (a native dataset folder: its images/)')
    .requiredOption('--out <dir>', 'prediction folder: <case>/<structure>_mean.png, <case>/<structure>_annotator<k>.png, <case>/overlay.png')
    .option('--annotators <list>', "'all' or 1-based annotator numbers, e.g. 1,3", 'all')
    .option('--no-overlay', 'skip the overlay pictures')
    .action(async (o: { model: string; input: string; out: string; annotators: string; overlay: boolean }) => {
      const annotators = o.annotators === 'all' ? undefined : splitList(o.annotators).map((x) => parseIntFlag('--annotators', x, 1, 1024));
      if (annotators && new Set(annotators).size !== annotators.length) throw new UserError(`--annotators lists an annotator twice: '${o.annotators}'`);
      const n = await predict({ model: o.model, input: o.input, out: o.out, annotators, overlay: o.overlay });
      process.stdout.write(`wrote predictions for ${plural(n, 'image')} to ${o.out}\n`);
    });
}
