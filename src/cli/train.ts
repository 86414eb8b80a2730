import { Command } from 'commander';
import { UserError } from '../errors';
import { METHODS } from '../methods/registry';
import { TRAIN_DEFAULTS, TrainOptions, train } from '../train/trainer';
import { collectList, parseChoice, parseFloatFlag, parseIntFlag, parseNumberList, setThreadsFlag } from './flags';

interface TrainFlags {
  data: string; out: string; split?: string; subset?: string[]; method: string; size: string; batchSize: string; lr: string;
  preferenceLr?: string; weightDecay: string; schedule: string; epochs?: string; variationEpochs: string; preferenceEpochs: string; strategy: string;
  jointWeights?: string; conditioning: string; calibration: string; encoder: string; pretrained?: string; seed: string;
  valFraction: string; normalization: string; augment: boolean; resume: boolean; threads?: string;
}

/** `avap train`: parses flags and calls train(). */
export function registerTrainCommand(program: Command): void {
  const d = TRAIN_DEFAULTS;
  program
    .command('train')
    .description('train a model on a multi-annotator dataset; RUN receives config.json, weights, normalisation and logs')
    .requiredOption('--data <dir>', 'dataset folder (native layout or RIGA DiscRegion)')
    .requiredOption('--out <run>', 'run folder to create (or to continue with --resume)')
    .option('--split <name>', "train on this split of dataset.json (default: 'train' when the dataset has it, else all cases)")
    .option('--subset <names>', 'train on these RIGA subsets (repeatable or comma-separated), e.g. BinRushed,MESSIDOR', collectList)
    .option('--method <name>', `method to train: ${Object.keys(METHODS).join(', ')} (see docs/methods.md)`, d.method)
    .option('--size <px>', 'input side (multiple of 32); the paper uses 256', String(d.size))
    .option('--batch-size <n>', 'images per step', String(d.batchSize))
    .option('--lr <x>', 'Adam learning rate', String(d.lr))
    .option('--preference-lr <x>', 'learning rate of step 2 (the APM alone); default --lr')
    .option('--weight-decay <x>', 'Adam weight decay', String(d.weightDecay))
    .option('--schedule <kind>', 'learning-rate schedule: constant, poly or cosine', d.schedule)
    .option('--epochs <n>', 'shorthand: step-1 epochs (any other method: its epochs) = n, AVAP step-2 epochs = n/2')
    .option('--variation-epochs <n>', 'epochs of step 1 (backbone + AVM), of joint training, or of any other method\'s single stage', String(d.variationEpochs))
    .option('--preference-epochs <n>', 'epochs of step 2 (APM)', String(d.preferenceEpochs))
    .option('--strategy <kind>', "'two-step' (the paper's) or 'joint' (Table V)", d.strategy)
    .option('--joint-weights <list>', 'joint strategy: one loss weight per structure, then the APM weight, e.g. 0.2,0.2,0.6')
    .option('--conditioning <kind>', "what the APM controller sees: 'both', 'code' or 'features' (Table IV)", d.conditioning)
    .option('--calibration <kind>', "AVM calibrated map: 'expectation' (Σ c·p_c / M) or 'argmax' (argmax / M)", d.calibration)
    .option('--encoder <name>', 'encoder: resnet34 (paper) or resnet18', d.encoder)
    .option('--pretrained <file>', 'ImageNet encoder weights converted from torchvision to safetensors (nothing is downloaded)')
    .option('--seed <n>', 'seed for initialisation, data order, augmentation and held-out validation cases', String(d.seed))
    .option('--val-fraction <x>', 'fraction of the training cases held out for validation', String(d.valFraction))
    .option('--normalization <kind>', "'per-pixel' (paper), 'per-channel' or 'imagenet'", d.normalization)
    .option('--no-augment', 'disable flips, rotations, scaling and colour jitter')
    .option('--resume', 'continue the run in --out from its last completed epoch', false)
    .option('--threads <n>', 'torch threads (default: all cores)')
    .action(async (f: TrainFlags, cmd: Command) => {
      await setThreadsFlag(f.threads);
      if (f.split && f.subset?.length) throw new UserError('--split and --subset cannot be combined');
      const given = (cmd.options.map((o) => o.attributeName()) as (keyof TrainFlags)[]).filter((k) => cmd.getOptionValueSource(k) === 'cli');
      const epochSetters = given.filter((k) => k === 'variationEpochs' || k === 'preferenceEpochs');
      if (f.epochs !== undefined && epochSetters.length > 0) {
        throw new UserError(`--epochs conflicts with ${epochSetters.map((k) => (k === 'variationEpochs' ? '--variation-epochs' : '--preference-epochs')).join(' and ')}: give either --epochs N or the epochs of each stage`);
      }
      const epochs = f.epochs !== undefined ? parseIntFlag('--epochs', f.epochs, 1) : undefined;
      const summary = await train({
        data: f.data, out: f.out, split: f.split, subsets: f.subset, method: f.method,
        size: parseIntFlag('--size', f.size, 32, 4096), batchSize: parseIntFlag('--batch-size', f.batchSize, 1, 4096),
        lr: parseFloatFlag('--lr', f.lr, 1e-12, 10),
        preferenceLr: f.preferenceLr !== undefined ? parseFloatFlag('--preference-lr', f.preferenceLr, 1e-12, 10) : undefined,
        weightDecay: parseFloatFlag('--weight-decay', f.weightDecay, 0, 10),
        schedule: parseChoice('--schedule', f.schedule, ['constant', 'poly', 'cosine'] as const),
        variationEpochs: epochs ?? parseIntFlag('--variation-epochs', f.variationEpochs, 0),
        preferenceEpochs: epochs !== undefined ? Math.max(1, Math.round(epochs / 2)) : parseIntFlag('--preference-epochs', f.preferenceEpochs, 0),
        strategy: parseChoice('--strategy', f.strategy, ['two-step', 'joint'] as const),
        jointWeights: f.jointWeights ? parseNumberList('--joint-weights', f.jointWeights) : undefined,
        conditioning: parseChoice('--conditioning', f.conditioning, ['both', 'code', 'features'] as const),
        calibration: parseChoice('--calibration', f.calibration, ['expectation', 'argmax'] as const),
        encoder: parseChoice('--encoder', f.encoder, ['resnet34', 'resnet18'] as const), featureChannels: TRAIN_DEFAULTS.featureChannels,
        pretrained: f.pretrained, seed: parseIntFlag('--seed', f.seed, 0, 2 ** 31 - 1),
        valFraction: parseFloatFlag('--val-fraction', f.valFraction, 0, 1),
        normalization: parseChoice('--normalization', f.normalization, ['per-pixel', 'per-channel', 'imagenet'] as const),
        augment: f.augment, resume: f.resume, explicit: explicitOptions(given),
      });
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    });
}

/** The train() options the given flags set (--epochs sets both stages' epochs, --subset the subsets). */
function explicitOptions(given: (keyof TrainFlags)[]): (keyof TrainOptions)[] {
  return given.flatMap((k): (keyof TrainOptions)[] => {
    if (k === 'epochs') return ['variationEpochs', 'preferenceEpochs'];
    if (k === 'subset') return ['subsets'];
    return k === 'threads' || k === 'resume' || k === 'data' || k === 'out' ? [] : [k];
  });
}
