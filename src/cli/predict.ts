import { Command } from 'commander';
import { ENGINES } from '../predict/engine';
import { PRECISION_CHOICES } from '../torch/precision';
import { DEVICE_CHOICES } from '../torch/device';
import { DEVICE_HELP } from '../train/settings';
import { predict } from '../predict/predict';
import { predictQubiq } from '../predict/qubiq';
import { parseSliceAxis } from '../data/volumes';
import { UserError } from '../errors';
import { plural } from '../util/format';
import { parseAnnotatorList, parseChoice, setThreadsFlag } from '../util/flags';

/** `avap predict`: parses flags and calls predict(). */
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
    .option('--precision <kind>', "the torch engine's convolutions: 'fp32' (the exported ONNX model's numbers), 'bf16', or 'auto' (bf16 on CPUs with AVX512-BF16 or AMX)", 'fp32')
    .option('--device <kind>', `the torch engine's device: ${DEVICE_HELP}`, 'auto')
    .option('--threads <n>', 'torch threads (default: all cores)')
    .option('--format <fmt>', "'avap' (the maps above) or 'qubiq' (--input a QUBIQ dataset folder; writes the challenge's submission tree OUT/<dataset>/<case>/taskTT.nii.gz with each image's geometry)", 'avap')
    .option('--split <name>', "with --format qubiq: only this split's cases (Training, Validation, Testing)")
    .option('--slice-axis <axis>', "with --format qubiq on 3D volumes: the voxel axis (x, y, z) to predict slice by slice across (default: the run's, else z)")
    .action(async (o: { model: string; input: string; out: string; annotators: string; overlay: boolean; engine: string; precision: string; device: string; threads?: string; format: string; split?: string; sliceAxis?: string }) => {
      await setThreadsFlag(o.threads);
      const engine = parseChoice('--engine', o.engine, ENGINES);
      const precision = parseChoice('--precision', o.precision, PRECISION_CHOICES);
      const device = parseChoice('--device', o.device, DEVICE_CHOICES);
      const format = parseChoice('--format', o.format, ['avap', 'qubiq'] as const);
      if (format === 'qubiq') {
        const sliceAxis = o.sliceAxis !== undefined ? parseSliceAxis('--slice-axis', o.sliceAxis) : undefined;
        const r = await predictQubiq({ model: o.model, input: o.input, split: o.split, out: o.out, engine, precision, device, sliceAxis });
        process.stdout.write(`wrote the QUBIQ submission for ${plural(r.cases, 'case')} of ${r.dataset} to ${o.out}\n`);
        return;
      }
      if (o.split !== undefined) throw new UserError('--split applies to --format qubiq');
      if (o.sliceAxis !== undefined) throw new UserError('--slice-axis applies to --format qubiq (3D volumes)');
      const n = await predict({ model: o.model, input: o.input, out: o.out, annotators: parseAnnotatorList(o.annotators), overlay: o.overlay, engine, precision, device });
      process.stdout.write(`wrote predictions for ${plural(n, 'image')} to ${o.out}\n`);
    });
}
