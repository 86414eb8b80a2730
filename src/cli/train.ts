import { Command, Option } from 'commander';
import { UserError } from '../errors';
import { MethodOption, OptionValue, parseOptionText } from '../methods/descriptor';
import { methodDescriptors, resolveMethod } from '../methods/registry';
import { TRAIN_DEFAULTS, TRAINING_SETTINGS, TrainSettings } from '../train/settings';
import { train } from '../train/trainer';
import { readWorkerEnv } from '../distributed/env';
import { DEFAULT_DIST_TIMEOUT_SECONDS } from '../distributed/group';
import { collectList, parseIntFlag, setThreadsFlag } from '../util/flags';

const PLACEHOLDER: Record<OptionValue['type'], string> = { int: '<n>', number: '<x>', choice: '<kind>', numbers: '<list>' };

function helpOf(o: MethodOption): string {
  const fallback = o.defaultText ?? (o.default !== undefined ? String(o.default) : undefined);
  return fallback === undefined ? o.description : `${o.description} (default: ${fallback})`;
}

/** The settings table as commander options; defaults stay unset here, so the library applies them and a given flag is told from a default. */
function settingOptions(): { setting: (typeof TRAINING_SETTINGS)[number]; option: Option }[] {
  return TRAINING_SETTINGS.flatMap((setting) => {
    const cli = setting.cli;
    const shown = setting.default !== undefined ? ` (default: ${String(setting.default)})` : '';
    const help = `${typeof setting.help === 'function' ? setting.help() : setting.help}${cli.form === 'value' || cli.form === 'list' ? shown : ''}`;
    switch (cli.form) {
      case 'value': return [{ setting, option: new Option(`${setting.flag} ${cli.placeholder}`, help) }];
      case 'list': return [{ setting, option: new Option(`${setting.flag} ${cli.placeholder}`, help).argParser(collectList) }];
      case 'negated': return [{ setting, option: new Option(`--no-${setting.flag.slice(2)}`, help) }];
      case 'switch': return [{ setting, option: new Option(setting.flag, help) }];
      case 'none': return [];
    }
  });
}

/** `avap train`: parses flags and calls train(). The shared settings come from the settings table, each method's own options from its descriptor. */
export function registerTrainCommand(program: Command): void {
  const command = program
    .command('train')
    .description('train a model on a multi-annotator dataset; RUN receives config.json, weights, normalisation and logs')
    .requiredOption('--data <dir>', 'dataset folder (native layout or RIGA DiscRegion)')
    .requiredOption('--out <run>', 'run folder to create (or to continue with --resume)');
  const settings = settingOptions();
  for (const { option } of settings) command.addOption(option);
  command
    .option('--threads <n>', 'torch threads (default: all cores, divided among the workers on this machine when launched by torchrun or avap launch)')
    .option('--dist-timeout <s>', 'several processes: seconds a rendezvous or a collective waits for the other ranks before the run stops', String(DEFAULT_DIST_TIMEOUT_SECONDS))
    .option('--local-batch-norm', "several processes: batch statistics of each rank's share of the batch (DDP's default) instead of the whole batch's", false);
  // Every method's own options; the one --method names may be given, the others are an error.
  const methodFlags = methodDescriptors().flatMap((descriptor) => (descriptor.options ?? []).map((option) => {
    const flag = new Option(`${option.flag} ${PLACEHOLDER[option.value.type]}`, helpOf(option));
    command.addOption(flag);
    return { descriptor, option, attribute: flag.attributeName() };
  }));
  command.action(async (f: Record<string, unknown> & { data: string; out: string; threads?: string }) => {
    await setThreadsFlag(f.threads);
    const given = (attribute: string) => command.getOptionValueSource(attribute) === 'cli';
    const chosen: Partial<TrainSettings> = {};
    const givenFlags: string[] = [];
    for (const { setting, option } of settings) {
      const attribute = option.attributeName();
      if (!given(attribute)) continue;
      const raw = f[attribute];
      (chosen as Record<string, unknown>)[setting.key] = setting.cli.form === 'value' ? setting.cli.parse(raw as string) : raw;
      if (setting.shapesResult) givenFlags.push(setting.flag);
    }
    if (chosen.split && chosen.subsets?.length) throw new UserError('--split and --subset cannot be combined');
    const method = chosen.method ?? TRAIN_DEFAULTS.method;
    const { descriptor } = resolveMethod(method);
    const methodOptions: Record<string, unknown> = {};
    for (const m of methodFlags) {
      const raw = f[m.attribute];
      if (raw === undefined) continue;
      if (m.descriptor !== descriptor) throw new UserError(`${m.option.flag} is an option of --method ${m.descriptor.variants?.usage ?? m.descriptor.name}, not of ${method}`);
      methodOptions[m.option.key] = parseOptionText(m.option, raw as string);
      givenFlags.push(m.option.flag);
    }
    const summary = await train({
      ...chosen, data: f.data, out: f.out, methodOptions, givenFlags,
      distTimeout: parseIntFlag('--dist-timeout', f.distTimeout as string, 1, 86400), syncBatchNorm: !f.localBatchNorm,
    });
    // Rank 0 speaks for the job: its stdout is what one process would print, and the other ranks print nothing.
    if ((readWorkerEnv(process.env)?.rank ?? 0) === 0) process.stdout.write(`${JSON.stringify(summary)}\n`);
  });
}
