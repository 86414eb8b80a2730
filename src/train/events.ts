// What training reports while it runs, as typed events: the CLI turns them into lines and a progress
// bar, `avap experiment` into its experiment-wide ETA, a library user into whatever it needs.
import { percent } from '../util/format';
import { progressBar, ProgressBar } from '../util/progress';
import type { TrainSummary } from './options';
import type { ValidationScores } from './validate';

export type TrainEvent =
  /** Something about the run worth a line: left-out cases, the dataset, the validation policy, where a resume starts. */
  | { type: 'note'; text: string }
  /** A round of steps begins: steps `step + 1` to `toStep` of the stage's `steps`. */
  | { type: 'roundStart'; stage: string; stageIndex: number; round: number; rounds: number; step: number; toStep: number; steps: number }
  | { type: 'step'; stage: string; stageIndex: number; step: number; steps: number; roundStep: number; roundSteps: number; loss: number }
  /**
   * A round finished and was validated (`val` null without validation cases); `best` when its weights
   * became the stage's selected ones by validation score.
   */
  | { type: 'round'; stage: string; stageIndex: number; round: number; rounds: number; step: number; steps: number; loss: number; lr: number; val: ValidationScores | null; best: boolean; seconds: number }
  | { type: 'done'; summary: TrainSummary };

/** The status line of an event, or null for those that are progress only. */
export function describeTrainEvent(e: TrainEvent): string | null {
  switch (e.type) {
    case 'note':
      return e.text;
    case 'round': {
      const val = e.val ? `, val mean voting ${percent(e.val.mean_voting)}%, average ${percent(e.val.average)}%${e.best ? ' (best)' : ''}` : '';
      return `${e.stage} step ${e.step}/${e.steps}: loss ${e.loss.toFixed(4)}, lr ${e.lr.toPrecision(3)}${val}, ${e.seconds.toFixed(1)} s`;
    }
    default:
      return null;
  }
}

/** Lines through `print` and, when `bar`, a progress bar per round. */
export function consoleReporter(opts: { print?: (line: string) => void; bar?: boolean } = {}): (e: TrainEvent) => void {
  const print = opts.print ?? ((line: string) => process.stderr.write(line + '\n'));
  let bar: ProgressBar | null = null;
  return (e) => {
    if (e.type === 'roundStart') bar = progressBar(`${e.stage} round ${e.round}/${e.rounds}`, opts.bar ?? process.stderr.isTTY === true);
    else if (e.type === 'step') {
      bar?.update(e.roundStep, e.roundSteps, `step ${e.step}/${e.steps}, loss ${e.loss.toFixed(4)}`);
      // Validation follows the round's last step: the bar makes way for the round's line.
      if (e.roundStep === e.roundSteps) {
        bar?.stop();
        bar = null;
      }
    }
    const line = describeTrainEvent(e);
    if (line !== null) print(line);
  };
}
