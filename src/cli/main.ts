#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { UserError } from '../errors';
import { registerDataCommands } from './data';
import { registerEvaluateCommand } from './evaluate';
import { registerTrainCommand } from './train';
import { registerPredictCommand } from './predict';
import { registerDemoCommand } from './demo';
import { registerExperimentCommand } from './experiment';
import { registerExportCommand } from './export';
import { registerViewCommand } from './view';

/**
 * Entry point: only parses arguments and calls library functions. A UserError (bad file, bad flag)
 * is printed as one line and exits 1; anything else is a bug and keeps its stack trace.
 */
export async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program.name('avap').description('Multi-annotator medical image segmentation (AVAP)').exitOverride();
  registerDemoCommand(program);
  registerDataCommands(program);
  registerTrainCommand(program);
  registerPredictCommand(program);
  registerEvaluateCommand(program);
  registerExperimentCommand(program);
  registerExportCommand(program);
  registerViewCommand(program);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UserError) {
      process.stderr.write(`avap: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => process.exit(code), (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(70);
  });
}
