import { Command } from 'commander';
import { ENGINES, openOnnxModel } from '../predict/engine';
import { loadRun } from '../predict/load';
import { listInputs, predictToFolder } from '../predict/predict';
import { parseAnnotatorList, parseChoice } from './flags';

/** `avap predict`: parses flags and calls predictToFolder(). */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .description('write calibrated and per-annotator probability maps (16-bit PNG) and an overlay for each image')
    .requiredOption('--model <run>', 'a trained run folder (from avap train); with --engine onnx also an exported .onnx file')
    .requiredOption('--input <path>', 'an image, or a folder of images (a native dataset folder: its images/)')
    .requiredOption('--out <dir>', 'prediction folder: <case>/<structure>_mean.png, <case>/<structure>_annotator<k>.png, <case>/overlay.png')
    .option('--annotators <list>', "'all' or 1-based annotator numbers, e.g. 1,3", 'all')
    .option('--no-overlay', 'skip the overlay pictures')
    .option('--engine <name>', "what runs the model: 'torch' (libtorch) or 'onnx' (onnxruntime-node, on an exported .onnx file or on the run exported in memory)", 'torch')
    .action(async (o: { model: string; input: string; out: string; annotators: string; overlay: boolean; engine: string }) => {
      const engine = parseChoice('--engine', o.engine, ENGINES);
      const inputs = listInputs(o.input);
      const annotators = parseAnnotatorList(o.annotators);
      const report = (n: number) => process.stdout.write(`wrote predictions for ${n} image${n === 1 ? '' : 's'} to ${o.out}\n`);
      if (engine === 'onnx') {
        const onnx = await openOnnxModel(o.model);
        try {
          report(await predictToFolder(onnx, inputs, o.out, { annotators, overlay: o.overlay }));
        } finally {
          await onnx.dispose();
        }
        return;
      }
      const loaded = loadRun(o.model);
      try {
        report(await predictToFolder(loaded, inputs, o.out, { annotators, overlay: o.overlay }));
      } finally {
        loaded.method.model.dispose();
      }
    });
}
