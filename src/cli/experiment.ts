import { Command } from 'commander';
import { DEFAULT_METHODS } from '../experiment/plan';
import { EXPERIMENT_PROFILES } from '../experiment/profiles';
import { runExperiment } from '../experiment/experiment';
import { collectList, parseChoice } from './flags';
import { parseIntFlag, setThreadsFlag } from './flags';

interface ExperimentFlags {
  data: string; out: string; methods?: string[]; profile: string; epochs?: string; size?: string; encoder?: string; seed: string;
  ablations: boolean; testSplit?: string; testSubset?: string[]; trainSplit?: string; pretrained?: string; threads?: string;
}

/** `avap experiment` (issue 6): parses flags and calls runExperiment(). */
export function registerExperimentCommand(program: Command): void {
  const q = EXPERIMENT_PROFILES.quick;
  const f = EXPERIMENT_PROFILES.full;
  program
    .command('experiment')
    .description("train and evaluate every method on one split, seed and budget; writes OUT/table2.md (the paper's Table II) and OUT/summary.json. Rerunning continues an interrupted experiment")
    .requiredOption('--data <dir>', 'dataset folder (native layout or RIGA DiscRegion)')
    .requiredOption('--out <dir>', 'experiment folder: runs/, eval/, table2.md, summary.json')
    .option('--methods <list>', `methods, comma-separated or repeated ('single' = single:1..single:M); default ${DEFAULT_METHODS.join(',')}`, collectList)
    .option('--profile <name>', `'quick' (${q.size}², ${q.encoder}, ${q.epochs} + ${q.preferenceEpochs} epochs, lr ${q.lr}) or 'full' (the paper's: ${f.size}², ${f.encoder}, batch ${f.batchSize}, lr ${f.lr}, ${f.epochs} + ${f.preferenceEpochs} epochs)`, 'quick')
    .option('--epochs <n>', "every method's epochs (AVAP: step 1; step 2 keeps the profile's ratio: quick n, full n/2); default from the profile")
    .option('--size <px>', 'input side, a multiple of 32; default from the profile')
    .option('--encoder <name>', 'resnet34 or resnet18; default from the profile')
    .option('--seed <n>', 'seed shared by every method (initialisation, data order, validation hold-out)', '0')
    .option('--ablations', "also the AVAP variants of Tables III (pre-training), IV (controller conditioning) and V (training strategy)", false)
    .option('--test-split <name>', "the test cases: this split (default 'test'); never trained on")
    .option('--test-subset <names>', 'the test cases: these subsets instead, e.g. Magrabia for RIGA', collectList)
    .option('--train-split <name>', "the training cases (default: the 'train' split; with --test-subset and no 'train' split, the other subsets)")
    .option('--pretrained <file>', 'ImageNet encoder weights (safetensors) for every method; enables the pre-training row of Table III')
    .option('--threads <n>', 'torch threads (default: all cores)')
    .action(async (flags: ExperimentFlags) => {
      await setThreadsFlag(flags.threads);
      const result = await runExperiment({
        data: flags.data, out: flags.out, methods: flags.methods,
        profile: parseChoice('--profile', flags.profile, ['quick', 'full'] as const),
        epochs: flags.epochs !== undefined ? parseIntFlag('--epochs', flags.epochs, 1) : undefined,
        size: flags.size !== undefined ? parseIntFlag('--size', flags.size, 32, 4096) : undefined,
        encoder: flags.encoder !== undefined ? parseChoice('--encoder', flags.encoder, ['resnet34', 'resnet18'] as const) : undefined,
        seed: parseIntFlag('--seed', flags.seed, 0, 2 ** 31 - 1), ablations: flags.ablations,
        testSplit: flags.testSplit, testSubsets: flags.testSubset, trainSplit: flags.trainSplit, pretrained: flags.pretrained,
      });
      process.stdout.write(result.table2);
    });
}
