// `avap train`: a run folder from a dataset and a method — set up the run, train its stages, write the
// summary. The pieces: setup.ts (selection, hold-out, normalisation, config.json), loop.ts (stages,
// validation-based selection, checkpoints), checkpoint.ts (weights on disk), events.ts (progress).
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import type { CaseRecord } from '../data/dataset';
import { DataLoader } from '../data/pipeline';
import { trainingStatistics } from '../data/statistics';
import { buildMethod } from '../methods/registry';
import { Stage } from '../methods/method';
import { describePrecision, manualSeed, resolvePrecision } from '../torch';
import { loadCheckpointWeights } from './checkpoint';
import { consoleReporter } from './events';
import { trainStages } from './loop';
import { TRAIN_DEFAULTS, TrainOptions, TrainSummary } from './options';
import { CheckpointState, checkRunFilesInside } from './run';
import { checkRunOutsideData, checkSomethingToTrain, removeFailedStart } from './preflight';
import { lockRunFolder } from './lock';
import { checkStatePlan, recordResume } from './resume';
import { prepareRun } from './setup';
import { MIN_SELECTION_CASES, validate } from './validate';

export { TRAIN_DEFAULTS } from './options';
export type { TrainOptions, TrainSettings, TrainSummary } from './options';
export type { TrainEvent } from './events';
export { holdOut } from './setup';

/**
 * Trains (or resumes) a run and returns its validation summary; everything lands in `opts.out`,
 * which is locked meanwhile (src/train/lock.ts). A new run that fails before its first checkpoint
 * leaves nothing behind.
 */
export async function train(opts: TrainOptions): Promise<TrainSummary> {
  checkRunOutsideData(opts.data, opts.out);
  const notes: string[] = [];
  const release = lockRunFolder(opts.out, (text) => notes.push(text));
  try {
    checkRunFilesInside(opts.out);
    return await (opts.resume ? trainRun(opts, notes) : removeFailedStart(opts.out, () => trainRun(opts, notes)));
  } finally {
    release();
  }
}

async function trainRun(opts: TrainOptions, notes: string[]): Promise<TrainSummary> {
  const emit = opts.onEvent ?? consoleReporter({ print: opts.print, bar: opts.progress });
  for (const text of notes) emit({ type: 'note', text });
  const o = { ...TRAIN_DEFAULTS, ...withoutUndefined(opts), data: opts.data, out: opts.out };
  const started = Date.now();
  const { run, config, state, ds, trainCases, valCases, normalization } = await prepareRun(o, emit);

  // Same seed → same initial weights; the checkpoint then overrides them when resuming.
  manualSeed(config.seed);
  const method = buildMethod(config.model);
  if (state) checkStatePlan(run, state, method.stages());
  const precisionChoice = config.precision;
  const precision = resolvePrecision(precisionChoice);
  method.model.setPrecision(precision);
  emit({ type: 'note', text: describePrecision(precisionChoice, precision) });
  if (config.pretrained && !state) {
    if (!method.encoder) throw new UserError(`--pretrained: method '${method.name}' has no encoder to load weights into`);
    method.encoder.loadPretrained(config.pretrained);
  }
  if (!state && method.initialize) method.initialize(await trainingStatistics(ds, trainCases, config.input.size));
  if (state) loadCheckpointWeights(run, method.model, state);

  const loaderOptions = { size: config.input.size, batchSize: config.optimizer.batchSize, normalization, seed: config.seed };
  const loaderFor = (cases: CaseRecord[], training: boolean) => new DataLoader(ds, cases, training
    ? { ...loaderOptions, shuffle: true, augment: config.augment, dropLast: cases.length > config.optimizer.batchSize }
    : { ...loaderOptions, shuffle: false, augment: false, dropLast: false });
  const trainLoader = loaderFor(trainCases, true);
  const valLoader = valCases.length > 0 ? loaderFor(valCases, false) : null;
  const stages = method.stages();
  checkSomethingToTrain(method.name, stages);
  if (o.resume) {
    emit({ type: 'note', text: describeResume(run.dir, state, stages) });
    recordResume(run, state, stages);
  }
  try {
    const best = await trainStages({ run, config, method, trainLoader, trainCases, loaderFor, valLoader, state, emit, started });
    const selected = (valLoader?.caseCount ?? 0) >= MIN_SELECTION_CASES ? 'best' as const : 'last' as const;
    const summary: TrainSummary = {
      run: run.dir,
      stages: stages.map((st, i) => {
        const b = best.find((x) => x.stage === i);
        return { name: st.name, steps: st.steps, select: st.select, selected, selectedStep: b?.step ?? 0, score: b?.score ?? null };
      }),
      validation: valLoader ? await validate(method, valLoader) : null,
      validationCases: valCases.length,
      seconds: (state?.elapsedSeconds ?? 0) + (Date.now() - started) / 1000,
    };
    writeFileAtomic(run.file('summary.json'), JSON.stringify(summary, null, 2) + '\n');
    run.log({ event: 'done', ...summary });
    emit({ type: 'done', summary });
    return summary;
  } finally {
    await Promise.all([trainLoader.close(), valLoader?.close()]);
    method.model.dispose();
  }
}

/** `{ epochs: undefined }` must not hide a default. */
function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function describeResume(dir: string, state: CheckpointState | null, stages: Stage[]): string {
  if (!state) return `resuming ${dir} from the start (no completed round yet)`;
  if (state.stage >= stages.length) return `resuming ${dir}: all ${stages.length} stage(s) trained; writing the summary`;
  return `resuming ${dir}: stage ${state.stage + 1}/${stages.length} (${stages[state.stage].name}), ${state.step}/${stages[state.stage].steps} steps done`;
}

