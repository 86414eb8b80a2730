import { Command } from 'commander';
import { EXPERIMENT_PROFILE_NAMES, ExperimentProfile, experimentProfile } from '../experiment/profiles';
import { runExperiment } from '../experiment/experiment';
import { optionsFor } from '../methods/descriptor';
import { defaultMethods, methodDescriptors } from '../methods/registry';
import { encoderNames } from '../models/encoders/registry';
import { DEVICE_CHOICES } from '../torch/device';
import { DEVICE_HELP } from '../train/settings';
import { collectList, parseChoice, parseIntFlag, parseIntList, setThreadsFlag } from '../util/flags';

interface ExperimentFlags {
  data: string; out: string; methods?: string[]; profile: string; steps?: string; size?: string; encoder?: string; seed?: string; seeds?: string;
  ablations: boolean; testSplit?: string; testSubset?: string[]; trainSplit?: string; pretrained?: string; threads?: string; device: string;
}

/** '64², resnet18, batch 8, lr 0.001 (poly), 300 steps; AVAP step 2: 300 steps at lr 0.005'. */
function describeProfile(p: ExperimentProfile): string {
  const notes = methodDescriptors().flatMap((d) => (d.describeSettings ? [d.describeSettings(optionsFor(d, p.methodOptions))] : []));
  return [`${p.size}², ${p.encoder}, batch ${p.batchSize}, lr ${p.lr} (${p.schedule}), ${p.steps} steps`, ...notes].join('; ');
}

/** `avap experiment`: parses flags and calls runExperiment(). */
export function registerExperimentCommand(program: Command): void {
  program
    .command('experiment')
    .description("train and evaluate every method on one split, at one or more budgets and seeds; writes OUT/table2.md (the paper's Table II), OUT/differences.md, OUT/curves.png and OUT/summary.json (a sweep also OUT/sweep.png). Rerunning continues an interrupted experiment; adding budgets or seeds trains only the new runs")
    .requiredOption('--data <dir>', 'dataset folder (native layout or RIGA DiscRegion)')
    .requiredOption('--out <dir>', 'experiment folder: runs/, eval/, table2.md, differences.md, curves.png, summary.json')
    .option('--methods <list>', `methods, comma-separated or repeated ('single' = single:1..single:M); default ${defaultMethods().join(',')}`, collectList)
    .option('--profile <name>', `'quick' (${describeProfile(experimentProfile('quick'))}) or 'full' (the paper's: ${describeProfile(experimentProfile('full'))})`, 'quick')
    .option('--steps <list>', "every method's main-stage optimiser steps, or several (e.g. 300,1000,3000: a budget sweep, a table per budget and OUT/sweep.png); a method's further stages keep the profile's ratio to it (AVAP's step 2: quick n, full n/2); default from the profile")
    .option('--size <px>', 'input side, a multiple of 32; default from the profile')
    .option('--encoder <name>', `${encoderNames().join(', ')}; default from the profile`)
    .option('--seed <n>', 'seed shared by every method (initialisation, data order, validation hold-out); default 0')
    .option('--seeds <list>', 'several seeds, e.g. 0,1,2: every method trained once per seed; tables show mean ± sd and paired bootstrap intervals over cases and seeds')
    .option('--ablations', `also the methods' ablation studies (${methodDescriptors().flatMap((d) => (d.ablations ? [d.ablations.description] : [])).join('; ')})`, false)
    .option('--test-split <name>', "the test cases: this split (default 'test'); never trained on")
    .option('--test-subset <names>', 'the test cases: these subsets instead, e.g. Magrabia for RIGA', collectList)
    .option('--train-split <name>', "the training cases (default: the 'train' split; with --test-subset and no 'train' split, the other subsets)")
    .option('--pretrained <file>', 'ImageNet encoder weights (safetensors) for every method; enables the pre-training row of Table III')
    .option('--threads <n>', 'torch threads (default: all cores)')
    .option('--device <kind>', DEVICE_HELP, 'auto')
    .action(async (flags: ExperimentFlags) => {
      await setThreadsFlag(flags.threads);
      const result = await runExperiment({
        data: flags.data, out: flags.out, methods: flags.methods,
        profile: parseChoice('--profile', flags.profile, EXPERIMENT_PROFILE_NAMES),
        steps: flags.steps !== undefined ? parseIntList('--steps', flags.steps, 1) : undefined,
        size: flags.size !== undefined ? parseIntFlag('--size', flags.size, 32, 4096) : undefined,
        encoder: flags.encoder !== undefined ? parseChoice('--encoder', flags.encoder, encoderNames()) : undefined,
        seed: flags.seed !== undefined ? parseIntFlag('--seed', flags.seed, 0, 2 ** 31 - 1) : undefined,
        seeds: flags.seeds !== undefined ? parseIntList('--seeds', flags.seeds, 0, 2 ** 31 - 1) : undefined, ablations: flags.ablations,
        testSplit: flags.testSplit, testSubsets: flags.testSubset, trainSplit: flags.trainSplit, pretrained: flags.pretrained,
        device: parseChoice('--device', flags.device, DEVICE_CHOICES),
      });
      process.stdout.write(result.table2);
    });
}
