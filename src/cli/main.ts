#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { UserError } from '../errors';
import { describeFsError, isFsError } from '../io/fsErrors';
import { registerDataCommands } from './data';
import { registerEvaluateCommand } from './evaluate';
import { registerTrainCommand } from './train';
import { registerPredictCommand } from './predict';
import { registerDemoCommand } from './demo';
import { registerExperimentCommand } from './experiment';
import { registerExportCommand } from './export';
import { registerViewCommand } from './view';
import { registerLaunchCommand } from './launch';

/**
 * Entry point: only parses arguments and calls library functions. A UserError (bad file, bad flag)
 * and a file-system failure (full disk, no permission, a file where a folder should be) are printed
 * as one line naming the path or flag and exit 1; anything else is a bug (see reportFailure).
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
  registerLaunchCommand(program);
  try {
    await program.parseAsync(argv);
    // `avap launch` answers with its workers' status.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    return reportFailure(err);
  }
}

/** The exit status for a failure, after printing it: 1 for bad input and file-system faults, 70 for a bug. */
export function reportFailure(err: unknown): number {
  if (err instanceof UserError || isFsError(err)) {
    process.stderr.write(`avap: ${oneLine(err instanceof UserError ? err.message : describeFsError(err))}\n`);
    return 1;
  }
  // A bug: one line by default, the whole trace with AVAP_DEBUG=1.
  if (process.env.AVAP_DEBUG === '1') process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  else process.stderr.write(`avap: internal error: ${oneLine((err as Error)?.message ?? String(err))} (run again with AVAP_DEBUG=1 for the stack trace)\n`);
  return 70;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

if (require.main === module) {
  // A failure outside the awaited chain (an event handler, a stream) gets the same treatment.
  const fail = (err: unknown) => process.exit(reportFailure(err));
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  main(process.argv).then((code) => process.exit(code), fail);
}
