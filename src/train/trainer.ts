// `avap train`: a run folder from a dataset and a method — set up the run, train its stages, write the
// summary. The pieces: setup.ts (selection, hold-out, normalisation, config.json), loop.ts (stages,
// validation-based selection, checkpoints), checkpoint.ts (weights on disk), events.ts (progress).
import * as path from 'node:path';
import { UserError } from '../errors';
import { DEFAULT_DIST_TIMEOUT_SECONDS, ProcessGroup, readWorkerEnv } from '../distributed';
import { openDataset } from '../data/dataset';
import { writeFileAtomic } from '../io/atomic';
import type { CaseRecord } from '../data/dataset';
import { DataLoader } from '../data/pipeline';
import { trainingStatistics } from '../data/statistics';
import { buildMethod } from '../methods/registry';
import { Stage } from '../methods/method';
import { Device, cpuBf16Support, describeDevice, describePrecision, explainOutOfMemory, isCuda, manualSeed, nn, resolveDevice, resolvePrecision, useDevice } from '../torch';
import { dataFingerprint, settingsOf } from './fingerprint';
import { loadCheckpointWeights } from './checkpoint';
import { consoleReporter } from './events';
import { stateTensors, trainStages } from './loop';
import { TRAIN_DEFAULTS, TrainOptions, TrainSummary } from './options';
import { CheckpointState, RunConfig, RunDir, checkRunFilesInside } from './run';
import { checkRunOutsideData, checkSomethingToTrain, removeFailedStart } from './preflight';
import { lockRunFolder } from './lock';
import { checkStatePlan, recordResume } from './resume';
import { PreparedRun, RunRequest, prepareRun } from './setup';
import type { Normalization } from '../data/normalization';
import type { TrainEvent } from './events';
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
  // torchrun's (or avap launch's) variables make this process one rank of several; without them, or
  // with WORLD_SIZE 1, nothing below takes a distributed path. Only rank 0 touches the run folder.
  const worker = readWorkerEnv();
  const device = resolveDevice(opts.device ?? TRAIN_DEFAULTS.device);
  const writes = !worker || worker.rank === 0;
  if (writes) checkRunOutsideData(opts.data, opts.out);
  const notes: string[] = [];
  const release = writes ? lockRunFolder(opts.out, (text) => notes.push(text)) : () => undefined;
  try {
    if (writes) checkRunFilesInside(opts.out);
    if (!worker) return await (opts.resume ? trainRun(opts, device, null, notes) : removeFailedStart(opts.out, () => trainRun(opts, device, null, notes)));
    const batchSize = opts.batchSize ?? TRAIN_DEFAULTS.batchSize;
    if (!opts.resume && batchSize % worker.worldSize !== 0) {
      throw new UserError(`--batch-size ${batchSize} cannot be split over WORLD_SIZE ${worker.worldSize} ranks: choose a multiple of ${worker.worldSize}`);
    }
    const group = await ProcessGroup.init(worker, opts.distTimeout ?? DEFAULT_DIST_TIMEOUT_SECONDS, device);
    try {
      // A worker torchrun restarted continues the run its job's first attempt created.
      const resume = opts.resume || (group.continuesRun(opts.out) && new RunDir(path.resolve(opts.out)).exists());
      const o = { ...opts, resume };
      // Only rank 0 creates the run folder, so only its failed start has anything to remove.
      return group.isWriter && !resume ? await removeFailedStart(opts.out, () => trainRun(o, device, group, notes)) : await trainRun(o, device, group, notes);
    } finally {
      group.destroy();
    }
  } finally {
    release();
  }
}

async function trainRun(opts: TrainOptions, device: Device, group: ProcessGroup | null, notes: string[]): Promise<TrainSummary> {
  const writes = !group || group.isWriter;
  const emit = !writes ? quietReporter(opts) : opts.onEvent ?? consoleReporter({ print: opts.print, bar: opts.progress });
  for (const text of notes) emit({ type: 'note', text });
  const o = { ...TRAIN_DEFAULTS, ...withoutUndefined(opts), data: opts.data, out: opts.out };
  useDevice(device);
  const started = Date.now();
  const { run, config, state, ds, trainCases, valCases, normalization } = group ? await joinRun(o, emit, group) : await prepareRun(o, emit);

  // Same seed → same initial weights; the checkpoint then overrides them when resuming.
  manualSeed(config.seed);
  const method = buildMethod(config.model);
  if (state) checkStatePlan(run, state, method.stages());
  const precisionChoice = config.precision;
  const precision = resolvePrecision(precisionChoice, device);
  method.model.setPrecision(precision);
  // The CPU, as ever, goes without saying.
  if (device !== 'cpu') emit({ type: 'note', text: describeDevice(o.device, device) });
  emit({ type: 'note', text: describePrecision(precisionChoice, precision, cpuBf16Support(), device) });
  if (config.pretrained && !state && writes) {
    if (!method.encoder) throw new UserError(`--pretrained: method '${method.name}' has no encoder to load weights into`);
    method.encoder.loadPretrained(config.pretrained);
  }
  if (!state && method.initialize) method.initialize(await trainingStatistics(ds, trainCases, config.input.size));
  if (state && writes) loadCheckpointWeights(run, method.model, state);
  // After the weights are final on the CPU (initialisation, --pretrained, the checkpoint), as PyTorch's model.to(device).
  method.model.to(device);
  if (group) {
    if (opts.syncBatchNorm ?? true) nn.convertSyncBatchNorm(method.model);
    // Rank 0's initial weights (after --pretrained, or the checkpoint's) on every rank.
    group.broadcastState(stateTensors(method.model));
  }

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
    if (writes) recordResume(run, state, stages);
  }
  if (group) {
    const bn = opts.syncBatchNorm ?? true ? 'synchronised over the ranks' : 'per rank';
    emit({ type: 'note', text: `data-parallel over ${group.worldSize} ranks: ${config.optimizer.batchSize / group.worldSize} of each batch's ${config.optimizer.batchSize} images per rank, batch norm ${bn}` });
    if (isCuda(device)) emit({ type: 'note', text: group.describeGpuCollectives() });
  }
  try {
    const best = await trainStages({ run, config, method, trainLoader, trainCases, loaderFor, valLoader, state, emit, started, group })
      .catch((err: unknown) => { throw explainOutOfMemory(err, 'train'); });
    const selected = (valLoader?.caseCount ?? 0) >= MIN_SELECTION_CASES ? 'best' as const : 'last' as const;
    const summary: TrainSummary = {
      run: run.dir,
      stages: stages.map((st, i) => {
        const b = best.find((x) => x.stage === i);
        return { name: st.name, steps: st.steps, select: st.select, selected, selectedStep: b?.step ?? 0, score: b?.score ?? null };
      }),
      validation: valLoader && writes ? await validate(method, valLoader) : null,
      validationCases: valCases.length,
      seconds: (state?.elapsedSeconds ?? 0) + (Date.now() - started) / 1000,
    };
    if (writes) {
      writeFileAtomic(run.file('summary.json'), JSON.stringify(summary, null, 2) + '\n');
      run.log({ event: 'done', ...summary });
    }
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


/** A rank other than 0 prints only its data-parallel note and errors: rank 0 reports the training. */
function quietReporter(opts: TrainOptions): (e: TrainEvent) => void {
  const print = opts.print ?? ((line: string) => process.stderr.write(line + '\n'));
  return (e) => {
    if (opts.onEvent) opts.onEvent(e);
    else if (e.type === 'note' && e.text.startsWith('data-parallel')) print(e.text);
  };
}

interface SharedRun { error?: string; config?: RunConfig; state?: CheckpointState | null; normalization?: Normalization }

/**
 * The run as rank 0 set it up (it alone reads and writes the run folder, which other machines need
 * not see): rank 0 prepares it and hands config, checkpoint state and normalisation to the others,
 * which open their own copy of the dataset. Then every rank checks that it was given the same
 * settings and the same data as rank 0.
 */
async function joinRun(o: RunRequest, emit: (e: TrainEvent) => void, group: ProcessGroup): Promise<PreparedRun> {
  let prepared: PreparedRun | null = null;
  let shared: SharedRun;
  if (group.isWriter) {
    try {
      prepared = await prepareRun(o, emit);
    } catch (err) {
      group.broadcastJson<SharedRun>({ error: (err as Error).message });
      throw err;
    }
    if (!o.resume) group.recordRunCreated(o.out);
    shared = group.broadcastJson<SharedRun>({ config: prepared.config, state: prepared.state, normalization: prepared.normalization });
  } else {
    shared = group.broadcastJson<SharedRun>({});
    if (shared.error !== undefined) throw new UserError(`rank ${group.rank}: rank 0 could not start the run: ${shared.error}`);
  }
  const config = shared.config!;
  if (config.optimizer.batchSize % group.worldSize !== 0) {
    throw new UserError(`the run's batch size ${config.optimizer.batchSize} cannot be split over WORLD_SIZE ${group.worldSize} ranks: resume with a WORLD_SIZE that divides it`);
  }
  if (!prepared) {
    const ds = await openDataset(o.data, { sliceAxis: config.data.sliceAxis });
    const byId = new Map(ds.cases.map((c) => [c.id, c]));
    const pick = (ids: string[]) => ids.map((id) => {
      const c = byId.get(id);
      if (!c) throw new UserError(`rank ${group.rank}: --data ${o.data} has no case '${id}', which rank 0's run trains on`);
      return c;
    });
    prepared = {
      run: new RunDir(path.resolve(o.out)), config, state: shared.state ?? null, ds,
      trainCases: pick(config.data.trainCases), valCases: pick(config.data.valCases), normalization: shared.normalization!,
    };
  }
  const settings = settingsOf(o, prepared.ds.annotators.length);
  delete settings['--pretrained'];
  group.agree('settings and data', JSON.stringify({ settings, data: dataFingerprint(prepared.ds, [...prepared.trainCases, ...prepared.valCases]) }));
  return prepared;
}
