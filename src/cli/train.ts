import { Command, Option } from 'commander';
import { UserError } from '../errors';
import { MethodOption, OptionValue, parseOptionText } from '../methods/descriptor';
import { methodDescriptors, methodUsages, resolveMethod } from '../methods/registry';
import { encoderNames } from '../models/encoders/registry';
import { PRECISION_CHOICES } from '../torch/precision';
import { TRAIN_DEFAULTS, train } from '../train/trainer';
import { DEFAULT_DIST_TIMEOUT_SECONDS } from '../distributed/group';
import { collectList, parseChoice, parseFloatFlag, parseIntFlag, setThreadsFlag } from '../util/flags';

interface TrainFlags {
  data: string; out: string; split?: string; subset?: string[]; method: string; size: string; batchSize: string; lr: string;
  weightDecay: string; schedule: string; steps: string; encoder: string; pretrained?: string; seed: string;
  valFraction: string; normalization: string; augment: boolean; precision: string; resume: boolean; threads?: string;
  distTimeout: string; localBatchNorm: boolean;
  [methodOption: string]: unknown;
}

const PLACEHOLDER: Record<OptionValue['type'], string> = { int: '<n>', number: '<x>', choice: '<kind>', numbers: '<list>' };

function helpOf(o: MethodOption): string {
  const fallback = o.defaultText ?? (o.default !== undefined ? String(o.default) : undefined);
  return fallback === undefined ? o.description : `${o.description} (default: ${fallback})`;
}

/** `avap train`: parses flags and calls train(). Each method's own options come from its descriptor. */
export function registerTrainCommand(program: Command): void {
  const d = TRAIN_DEFAULTS;
  const command = program
    .command('train')
    .description('train a model on a multi-annotator dataset; RUN receives config.json, weights, normalisation and logs')
    .requiredOption('--data <dir>', 'dataset folder (native layout or RIGA DiscRegion)')
    .requiredOption('--out <run>', 'run folder to create (or to continue with --resume)')
    .option('--split <name>', "train on this split of dataset.json (default: 'train' when the dataset has it, else all cases)")
    .option('--subset <names>', 'train on these RIGA subsets (repeatable or comma-separated), e.g. BinRushed,MESSIDOR', collectList)
    .option('--method <name>', `method to train: ${methodUsages().join(', ')} (see docs/methods.md)`, d.method)
    .option('--size <px>', 'input side (multiple of 32); the paper uses 256', String(d.size))
    .option('--batch-size <n>', 'images per step', String(d.batchSize))
    .option('--lr <x>', 'Adam learning rate', String(d.lr))
    .option('--weight-decay <x>', 'Adam weight decay', String(d.weightDecay))
    .option('--schedule <kind>', 'learning-rate schedule: constant, poly or cosine', d.schedule)
    .option('--steps <n>', "optimiser steps of the method's main stage (AVAP: step 1, backbone + AVM), whatever the dataset's size", String(d.steps))
    .option('--encoder <name>', `encoder: ${encoderNames().join(', ')} (the paper: resnet34)`, d.encoder)
    .option('--pretrained <file>', 'ImageNet encoder weights converted from torchvision to safetensors (nothing is downloaded)')
    .option('--seed <n>', 'seed for initialisation, data order, augmentation and held-out validation cases', String(d.seed))
    .option('--val-fraction <x>', "fraction of the training cases held out for validation, or 'auto': 10% when that makes at least 20 cases (enough to choose weights by), else none and the final weights are kept", String(d.valFraction))
    .option('--normalization <kind>', "'per-pixel' (paper), 'per-channel' or 'imagenet'", d.normalization)
    .option('--no-augment', 'disable flips, rotations, scaling and colour jitter')
    .option('--precision <kind>', "convolutions in 'fp32' or 'bf16' (weights, batch norm, losses and the optimiser stay fp32); 'auto': bf16 on CPUs with AVX512-BF16 or AMX, else fp32", d.precision)
    .option('--resume', 'continue the run in --out from its last completed round of steps', false)
    .option('--threads <n>', 'torch threads (default: all cores, divided among the workers on this machine when launched by torchrun or avap launch)')
    .option('--dist-timeout <s>', 'several processes: seconds a rendezvous or a collective waits for the other ranks before the run stops', String(DEFAULT_DIST_TIMEOUT_SECONDS))
    .option('--local-batch-norm', "several processes: batch statistics of each rank's share of the batch (DDP's default) instead of the whole batch's", false);
  // Every method's own options; the one --method names may be given, the others are an error.
  const methodFlags = methodDescriptors().flatMap((descriptor) => (descriptor.options ?? []).map((option) => {
    const flag = new Option(`${option.flag} ${PLACEHOLDER[option.value.type]}`, helpOf(option));
    command.addOption(flag);
    return { descriptor, option, attribute: flag.attributeName() };
  }));
  command.action(async (f: TrainFlags) => {
    await setThreadsFlag(f.threads);
    if (f.split && f.subset?.length) throw new UserError('--split and --subset cannot be combined');
    const { descriptor } = resolveMethod(f.method);
    const methodOptions: Record<string, unknown> = {};
    for (const m of methodFlags) {
      const raw = f[m.attribute];
      if (raw === undefined) continue;
      if (m.descriptor !== descriptor) throw new UserError(`${m.option.flag} is an option of --method ${m.descriptor.variants?.usage ?? m.descriptor.name}, not of ${f.method}`);
      methodOptions[m.option.key] = parseOptionText(m.option, raw as string);
    }
    const summary = await train({
      data: f.data, out: f.out, split: f.split, subsets: f.subset, method: f.method,
      size: parseIntFlag('--size', f.size, 32, 4096), batchSize: parseIntFlag('--batch-size', f.batchSize, 1, 4096),
      lr: parseFloatFlag('--lr', f.lr, 1e-12, 10),
      weightDecay: parseFloatFlag('--weight-decay', f.weightDecay, 0, 10),
      schedule: parseChoice('--schedule', f.schedule, ['constant', 'poly', 'cosine'] as const),
      steps: parseIntFlag('--steps', f.steps, 1),
      encoder: parseChoice('--encoder', f.encoder, encoderNames()), featureChannels: TRAIN_DEFAULTS.featureChannels,
      pretrained: f.pretrained, seed: parseIntFlag('--seed', f.seed, 0, 2 ** 31 - 1),
      valFraction: f.valFraction === 'auto' ? 'auto' : parseFloatFlag('--val-fraction', f.valFraction, 0, 0.99),
      normalization: parseChoice('--normalization', f.normalization, ['per-pixel', 'per-channel', 'imagenet'] as const),
      augment: f.augment, precision: parseChoice('--precision', f.precision, PRECISION_CHOICES), resume: f.resume, methodOptions, explicit: givenSettings(command),
      distTimeout: parseIntFlag('--dist-timeout', f.distTimeout, 1, 86400), syncBatchNorm: !f.localBatchNorm,
    });
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  });
}

/** The setting flags given on the command line (what a resumed run compares with its own); --no-augment counts as --augment. */
function givenSettings(command: Command): string[] {
  const notSettings = new Set(['--data', '--out', '--resume', '--threads', '--dist-timeout', '--local-batch-norm']);
  return command.options
    .filter((o) => o.long && !notSettings.has(o.long) && command.getOptionValueSource(o.attributeName()) === 'cli')
    .map((o) => (o.long === '--no-augment' ? '--augment' : o.long!));
}
