// `avap train --resume`: a run continues only on the data and with the settings it was started with,
// and its log reads as one uninterrupted run plus a line per resumption.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { removeStaleTempFiles, writeFileAtomic } from '../io/atomic';
import { TEXT_LIMIT, readBounded } from '../io/readBounded';
import type { CaseRecord, Dataset } from '../data/dataset';
import type { Stage } from '../methods/method';
import { asFlag, dataDifference, dataFingerprint, readFingerprint, settingsOf } from './fingerprint';
import type { CheckpointState, RunConfig, RunDir } from './run';
import type { RunRequest } from './setup';

const names = (xs: readonly string[]) => xs.join(', ');

/**
 * Refuses to resume `run` on other data or with other settings, naming what differs; returns the line
 * telling which settings the resumed run takes from the run. `opts.givenFlags` lists the flags given
 * now (on the command line); only those are compared, as the others are taken from the run.
 */
export function checkResume(run: RunDir, config: RunConfig, ds: Dataset, opts: RunRequest): string {
  const data = `--data: ${opts.data}`;
  const trained = `run ${run.dir} was trained with`;
  if (names(ds.annotators) !== names(config.model.annotators)) {
    throw new UserError(`${data} has annotators ${names(ds.annotators)} (M = ${ds.annotators.length}), but ${trained} ${names(config.model.annotators)} (M = ${config.model.annotators.length})`);
  }
  const structures = ds.structures.map((s) => s.name);
  if (names(structures) !== names(config.model.structures)) throw new UserError(`${data} has structures ${names(structures)}, but ${trained} ${names(config.model.structures)}`);
  if (ds.channels !== config.input.channels) throw new UserError(`${data} has ${ds.channels}-channel images, but ${trained} ${config.input.channels}-channel images`);

  const fingerprint = readFingerprint(run.dir);
  if (!fingerprint) return `resuming ${run.dir} with the settings of its config.json (it has no fingerprint.json, so its data and settings cannot be verified)`;

  const stored = fingerprint.settings;
  const requested = settingsOf(opts, ds.annotators.length);
  // A setting newer than the run's fingerprint is compared only when its flag is given: the run keeps its own.
  const compared = opts.givenFlags ?? Object.keys(stored);
  const differing = [...new Set(compared)].filter((k) => k in stored || k in requested).filter((k) => JSON.stringify(stored[k] ?? null) !== JSON.stringify(requested[k] ?? null));
  if (differing.length > 0) {
    const what = differing.map((k) => `${k in requested ? asFlag(k, requested[k]) : `no ${asFlag(k, stored[k]).split(' ')[0]}`} (the run's: ${k in stored ? asFlag(k, stored[k]) : 'none'})`);
    throw new UserError(`--resume: ${what.join(', ')}: a resumed run keeps the settings it was started with; drop ${differing.length === 1 ? 'that flag' : 'those flags'} or start a new run in another --out`);
  }

  const byId = new Map(ds.cases.map((c) => [c.id, c]));
  const ids = [...config.data.trainCases, ...config.data.valCases];
  const missing = ids.find((id) => !byId.has(id));
  if (missing !== undefined) throw new UserError(`${data} is not the data ${run.dir} was trained on: it has no case '${missing}', which the run trains on`);
  const difference = dataDifference(fingerprint.data, dataFingerprint(ds, ids.map((id) => byId.get(id) as CaseRecord)));
  if (difference) throw new UserError(`${data} is not the data ${run.dir} was trained on: it ${difference}`);

  const taken = Object.entries(stored).map(([k, v]) => asFlag(k, v)).join(' ');
  const moved = path.resolve(opts.data) !== config.data.root ? ` (the same data as ${config.data.root}, now at ${path.resolve(opts.data)})` : '';
  return `resuming with the run's settings: ${taken}${moved}`;
}

/**
 * Makes the run folder consistent with the checkpoint it resumes from: removes the temp files of
 * writes a kill interrupted, drops the log's rounds and stage ends after the checkpoint (they are
 * trained again) and logs the resumption.
 */
export function recordResume(run: RunDir, state: CheckpointState | null, stages: Stage[]): void {
  removeStaleTempFiles(run.dir);
  removeStaleTempFiles(run.checkpointDir);
  const logFile = run.file('log.jsonl');
  // Decoded leniently: a kill may have torn the last line inside a character, and that line is dropped anyway.
  const lines = fs.existsSync(logFile) ? readBounded(logFile, TEXT_LIMIT, 'a training log').toString('utf8').split('\n').filter((l) => l.trim() !== '') : [];
  const done = (e: { stage?: unknown; step?: unknown }): boolean => {
    const s = stages.findIndex((st) => st.name === e.stage);
    return state !== null && (s < state.stage || (s === state.stage && Number(e.step) <= state.step));
  };
  const kept: string[] = [];
  let discarded = 0;
  for (const line of lines) {
    let event: { event?: unknown; stage?: unknown; step?: unknown };
    try {
      event = JSON.parse(line);
    } catch {
      discarded++; // a line torn by the kill
      continue;
    }
    if (((event.event === 'round' || event.event === 'stageEnd') && !done(event)) || event.event === 'done') discarded++;
    else kept.push(line);
  }
  const at = state === null ? { stage: null, step: 0 } : { stage: stages[state.stage]?.name ?? 'done', step: state.step };
  kept.push(JSON.stringify({ time: new Date().toISOString(), event: 'resume', ...at, discardedEvents: discarded }));
  writeFileAtomic(logFile, kept.join('\n') + '\n');
}

/**
 * A checkpoint's stage and step must be a point of this run's plan: a stage it has (or the end of
 * the last one, once every stage is trained, when model.safetensors must exist) and a step within
 * that stage's steps. Its list of selected weights must name those stages and steps too.
 */
export function checkStatePlan(run: RunDir, state: CheckpointState, stages: Stage[]): void {
  const where = run.stateFile;
  const plan = stages.map((s, i) => `${i} (${s.name}, ${s.steps} steps)`).join(', ');
  if (state.stage > stages.length || (state.stage === stages.length && state.step !== 0)) {
    throw new UserError(`${where}: stage ${state.stage}${state.stage === stages.length ? `, step ${state.step}` : ''} is not in this run's plan: its stages are ${plan}`);
  }
  if (state.stage < stages.length && state.step > stages[state.stage].steps) {
    throw new UserError(`${where}: step ${state.step} is beyond stage ${state.stage} (${stages[state.stage].name}), which has ${stages[state.stage].steps} steps`);
  }
  const bad = state.best.find((b) => b.stage >= stages.length || b.stage > state.stage || b.step > stages[b.stage].steps);
  if (bad) throw new UserError(`${where}: best names stage ${bad.stage} step ${bad.step}, which is not a completed point of this run's plan (stages ${plan})`);
  const modelNeeded = state.stage > 0 || state.best.length > 0;
  if (modelNeeded && !fs.lstatSync(run.modelFile, { throwIfNoEntry: false })?.isFile()) {
    throw new UserError(`${where}: stage ${state.stage} follows trained weights, but ${run.modelFile} is missing or not a regular file`);
  }
}
