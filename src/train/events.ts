// What training reports while it runs, as typed events: the CLI turns them into lines and a progress
// bar, `avap experiment` into its experiment-wide ETA, a library user into whatever it needs.
import { percent } from '../util/format';
import { progressBar, ProgressBar } from '../util/progress';
import type { TrainSummary } from './options';
import type { ValidationScores } from './validate';

export type TrainEvent =
  /** Something about the run worth a line: left-out cases, the dataset, where a resume starts. */
  | { type: 'note'; text: string }
  | { type: 'epochStart'; stage: string; stageIndex: number; epoch: number; epochs: number; steps: number }
  | { type: 'step'; stage: string; stageIndex: number; epoch: number; step: number; steps: number; loss: number }
  /** An epoch finished and was validated; `best` when it improved the stage's selection score. */
  | { type: 'epoch'; stage: string; stageIndex: number; epoch: number; epochs: number; loss: number; lr: number; val: ValidationScores; best: boolean; seconds: number }
  | { type: 'done'; summary: TrainSummary };

/** The status line of an event, or null for those that are progress only. */
export function describeTrainEvent(e: TrainEvent): string | null {
  switch (e.type) {
    case 'note':
      return e.text;
    case 'epoch':
      return `${e.stage} epoch ${e.epoch}/${e.epochs}: loss ${e.loss.toFixed(4)}, `
        + `val mean voting ${percent(e.val.mean_voting)}%, average ${percent(e.val.average)}%${e.best ? ' (best)' : ''}, ${e.seconds.toFixed(1)} s`;
    default:
      return null;
  }
}

/** Lines through `print` and, when `bar`, a progress bar per epoch. */
export function consoleReporter(opts: { print?: (line: string) => void; bar?: boolean } = {}): (e: TrainEvent) => void {
  const print = opts.print ?? ((line: string) => process.stderr.write(line + '\n'));
  let bar: ProgressBar | null = null;
  return (e) => {
    if (e.type === 'epochStart') bar = progressBar(`${e.stage} ${e.epoch}/${e.epochs}`, opts.bar ?? process.stderr.isTTY === true);
    else if (e.type === 'step') {
      bar?.update(e.step, e.steps, `loss ${e.loss.toFixed(4)}`);
      // Validation follows the last step: the bar makes way for the epoch's line.
      if (e.step === e.steps) {
        bar?.stop();
        bar = null;
      }
    }
    const line = describeTrainEvent(e);
    if (line !== null) print(line);
  };
}
