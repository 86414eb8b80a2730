// `avap experiment`: every method of the paper's Table II trained on the same split, seed and budget by
// the shared trainer, each evaluated on the same test cases by `evaluateModel`, and the results laid
// out like Table II (and, with ablations, Tables III–V).
//   OUT/experiment.json    the settings; a rerun must match them (methods may differ)
//   OUT/runs/<method>/     the run folders (`avap train` layout)
//   OUT/eval/<method>/     the evaluations (`avap evaluate` layout: summary.json, per_case.csv, report.md)
//   OUT/table2.md, OUT/table3.md … table5.md (with --ablations), OUT/summary.json
// A method whose evaluation exists is reused; a run with a checkpoint but no result resumes. So an
// interrupted experiment continues where it stopped, and adding methods only trains the new ones.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { CaseRecord, Dataset, openDataset, selectCases } from '../data/dataset';
import { EvaluationSummary } from '../eval/evaluate';
import { SUMMARY_FILE } from '../eval/report';
import { evaluateModel } from '../predict/evaluateModel';
import { AnyMethodDescriptor, optionsFor } from '../methods/descriptor';
import { defaultMethods, methodDescriptors, resolveMethod } from '../methods/registry';
import { checkInputSize } from '../models/encoders/registry';
import { describeTrainEvent } from '../train/events';
import { RunDir } from '../train/run';
import { TrainOptions, TrainSummary, train } from '../train/trainer';
import { percent, perStructure, plural } from '../util/format';
import { AblationPlannedRun, PlanContext, PlannedRun, planAblations, planMethods } from './plan';
import { EXPERIMENT_PROFILES, ExperimentProfile } from './profiles';
import { ExperimentProgress, formatDuration } from './progress';
import { TableRow, table2 } from './tables';

export interface ExperimentOptions {
  data: string;
  out: string;
  /** Method names (`single` = single:1..single:M); default every registered method. */
  methods?: string[];
  profile: keyof typeof EXPERIMENT_PROFILES;
  /** Overrides of the profile; `steps` also scales the methods' further stages (AVAP's step 2), keeping the profile's ratio. */
  steps?: number;
  size?: number;
  encoder?: string;
  seed: number;
  ablations: boolean;
  /** The test cases: a split (default 'test') or subsets (e.g. RIGA's Magrabia). */
  testSplit?: string;
  testSubsets?: string[];
  /** The training cases (default the dataset's 'train' split; with --test-subset, the other subsets). */
  trainSplit?: string;
  pretrained?: string;
  /** Status lines (default: stderr). */
  print?: (line: string) => void;
}

/**
 * What OUT/experiment.json records; a rerun with different values would mix incomparable runs. The
 * profile's method options sit beside the shared settings (e.g. preferenceSteps, preferenceLr).
 */
type ExperimentSettings = Omit<ExperimentProfile, 'methodOptions'> & {
  data: string;
  train: { split?: string; subsets?: string[] };
  test: { split?: string; subsets?: string[] };
  seed: number;
  pretrained: string | null;
} & Record<string, unknown>;

export interface MethodResult {
  id: string;
  label: string;
  run: string;
  evaluation: string;
  /** Training time of the run (all sessions), seconds. */
  train_seconds: number | null;
  average: Record<string, number | null>;
  mean_voting: Record<string, number | null>;
  per_annotator: Record<string, (number | null)[]>;
}

export interface ExperimentResult {
  out: string;
  table2: string;
  methods: MethodResult[];
  ablations: MethodResult[];
  seconds: number;
}

export async function runExperiment(opts: ExperimentOptions): Promise<ExperimentResult> {
  const print = opts.print ?? ((line: string) => process.stderr.write(line + '\n'));
  const started = Date.now();
  const out = path.resolve(opts.out);
  const ds = await openDataset(opts.data);
  const { trainSelection, testSelection, testCases } = chooseCases(ds, opts);
  const settings = resolveSettings(opts, trainSelection, testSelection);
  const context: PlanContext = {
    structures: ds.structures.map((s) => s.name), annotators: ds.annotators, inChannels: ds.channels,
    encoder: settings.encoder, steps: settings.steps, options: settings,
  };
  let runs = planMethods(opts.methods ?? defaultMethods(), context);
  const ablations = opts.ablations ? planAblations(context, settings.pretrained !== null) : [];
  // An ablation table compares against its method's default run, so that is trained too.
  const studies = [...new Set(ablations.map((a) => a.study))];
  if (studies.some((m) => !runs.some((r) => r.id === m))) runs = planMethods([...runs.map((r) => r.id), ...studies], context);
  checkSettings(out, settings);
  const all: PlannedRun[] = [...runs, ...ablations];

  const progress = new ExperimentProgress(all.reduce((n, r) => n + sum(r.stageSteps), 0));
  for (const r of all) progress.skip(stepsAlreadyDone(out, r));
  print(`experiment: ${plural(all.length, 'run')} (${all.map((r) => r.id).join(', ')}), ${ds.name}: `
    + `${testCases.length} test cases (${describeSelection(testSelection)}), ${settings.size}², ${settings.encoder}, ${settings.steps} steps; ${progress.describe()}`);

  const results = new Map<string, MethodResult & { summary: EvaluationSummary }>();
  const publish = () => writeOutputs(out, ds, testCases.length, settings, runs, ablations, results, started);
  for (const [i, run] of all.entries()) {
    const tag = `[${i + 1}/${all.length} ${run.id}]`;
    const runDir = path.join(out, 'runs', run.folder);
    const evalDir = path.join(out, 'eval', run.folder);
    const evalFile = path.join(evalDir, SUMMARY_FILE);
    if (!fs.existsSync(evalFile)) {
      await ensureTrained(run, runDir, opts.data, settings, trainSelection, progress, (line) => print(`${tag} ${line}`));
      print(`${tag} evaluating on ${testCases.length} test cases`);
      await evaluateModel(runDir, ds, testCases, evalDir, { label: run.label });
    } else {
      print(`${tag} reusing ${path.relative(out, evalDir)}`);
    }
    const summary = readEvaluation(evalFile);
    results.set(run.id, {
      id: run.id, label: run.label, run: runDir, evaluation: evalDir, train_seconds: readTrainSeconds(runDir),
      average: summary.average, mean_voting: summary.mean_voting, per_annotator: summary.per_annotator, summary,
    });
    publish();
    print(`${tag} done: Average ${pair(summary, summary.average)}, Mean Voting ${pair(summary, summary.mean_voting)}; ${progress.describe()}`);
  }
  const { table } = publish();
  return {
    out, table2: table,
    methods: runs.map((r) => withoutSummary(results.get(r.id)!)),
    ablations: ablations.map((r) => withoutSummary(results.get(r.id)!)),
    seconds: (Date.now() - started) / 1000,
  };
}

/** Test cases from --test-split/--test-subset; training cases disjoint from them (never trained on). */
function chooseCases(ds: Dataset, opts: ExperimentOptions): { trainSelection: { split?: string; subsets?: string[] }; testSelection: { split?: string; subsets?: string[] }; testCases: CaseRecord[] } {
  if (opts.testSplit && opts.testSubsets?.length) throw new UserError('--test-split and --test-subset cannot be combined');
  const testSelection = opts.testSubsets?.length ? { subsets: opts.testSubsets } : { split: opts.testSplit ?? 'test' };
  if (testSelection.split && !ds.splits[testSelection.split]) {
    throw new UserError(`--test-split: ${opts.data} has no split '${testSelection.split}' (known: ${Object.keys(ds.splits).join(', ') || 'none'}); pass --test-split or --test-subset`);
  }
  const testCases = selectCases(ds, testSelection);
  if (testCases.length === 0) throw new UserError(`--test-split/--test-subset: the test selection (${describeSelection(testSelection)}) of ${opts.data} holds no cases`);

  let trainSelection: { split?: string; subsets?: string[] };
  if (opts.trainSplit || ds.splits.train) trainSelection = { split: opts.trainSplit ?? 'train' };
  else if (testSelection.subsets) {
    const others = [...new Set(ds.cases.map((c) => c.subset).filter((s): s is string => s !== undefined && !testSelection.subsets!.includes(s)))];
    if (others.length === 0) throw new UserError(`--test-subset: no other subset of ${opts.data} is left to train on`);
    trainSelection = { subsets: others };
  } else {
    throw new UserError(`--train-split: ${opts.data} has no 'train' split; name the training split with --train-split`);
  }
  const trainCases = selectCases(ds, trainSelection);
  const testIds = new Set(testCases.map((c) => c.id));
  const shared = trainCases.filter((c) => testIds.has(c.id)).length;
  if (shared > 0) throw new UserError(`--train-split: the training cases (${describeSelection(trainSelection)}) include ${shared} test case${shared === 1 ? '' : 's'}; the test cases must never be trained on`);
  return { trainSelection, testSelection, testCases };
}

function resolveSettings(opts: ExperimentOptions, train: ExperimentSettings['train'], test: ExperimentSettings['test']): ExperimentSettings {
  const profile = EXPERIMENT_PROFILES[opts.profile];
  if (!profile) throw new UserError(`--profile must be one of ${Object.keys(EXPERIMENT_PROFILES).join(', ')}, got '${opts.profile}'`);
  const size = opts.size ?? profile.size;
  const encoder = opts.encoder ?? profile.encoder;
  checkInputSize('--size', size, encoder);
  if (opts.pretrained && !fs.existsSync(opts.pretrained)) throw new UserError(`--pretrained: ${opts.pretrained}: file not found`);
  return {
    data: path.resolve(opts.data), train, test, size, batchSize: profile.batchSize, lr: profile.lr, schedule: profile.schedule, weightDecay: profile.weightDecay,
    steps: opts.steps ?? profile.steps, encoder, seed: opts.seed, pretrained: opts.pretrained ? path.resolve(opts.pretrained) : null,
    ...scaledOptions(profile, opts.steps),
  };
}

/** The profile's method options; with --steps, the steps of the methods' further stages keep their ratio to the main stage. */
function scaledOptions(profile: ExperimentProfile, steps: number | undefined): Record<string, unknown> {
  const stageSteps = new Set(methodDescriptors().flatMap((d) => (d.options ?? []).filter((o) => o.stageSteps).map((o) => o.key)));
  return Object.fromEntries(Object.entries(profile.methodOptions).map(([key, value]) => [key,
    steps !== undefined && stageSteps.has(key) ? Math.max(1, Math.round((steps * (value as number)) / profile.steps)) : value]));
}

/** Writes OUT/experiment.json the first time; later, refuses settings that differ from it. */
function checkSettings(out: string, settings: ExperimentSettings): void {
  const file = path.join(out, 'experiment.json');
  if (fs.existsSync(file)) {
    let previous: Record<string, unknown>;
    try {
      previous = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
    }
    const differing = Object.entries(settings).filter(([k, v]) => JSON.stringify(previous[k] ?? null) !== JSON.stringify(v ?? null)).map(([k]) => k);
    if (differing.length > 0) throw new UserError(`--out: ${out} holds an experiment with other settings (${differing.join(', ')}); choose another --out or repeat its settings`);
    return;
  }
  fs.mkdirSync(out, { recursive: true });
  writeFileAtomic(file, JSON.stringify(settings, null, 2) + '\n');
}

/** Trains the run, resuming it when it has started; a finished run (summary.json) is left alone. */
async function ensureTrained(run: PlannedRun, runDir: string, data: string, s: ExperimentSettings, selection: ExperimentSettings['train'],
  progress: ExperimentProgress, print: (line: string) => void): Promise<TrainSummary | null> {
  if (fs.existsSync(path.join(runDir, 'summary.json'))) return null;
  const { descriptor } = resolveMethod(run.method);
  let roundFrom = 0;
  const options: TrainOptions = {
    data, out: runDir, ...selection, method: run.method,
    size: s.size, batchSize: s.batchSize, lr: s.lr, weightDecay: s.weightDecay, schedule: s.schedule, steps: run.overrides.steps ?? s.steps,
    encoder: s.encoder, seed: s.seed, pretrained: 'pretrained' in run.overrides ? undefined : s.pretrained ?? undefined,
    methodOptions: { ...optionsFor(descriptor, s), ...run.overrides.methodOptions },
    resume: new RunDir(runDir).exists(),
    onEvent: (e) => {
      const line = describeTrainEvent(e);
      if (e.type === 'roundStart') roundFrom = e.step;
      if (e.type === 'round') {
        progress.trained(e.step - roundFrom);
        print(`${line} | ${progress.describe()}`);
      } else if (line !== null) {
        print(line);
      }
    },
  };
  return train(options);
}

/** Steps of this run already trained in earlier sessions. */
function stepsAlreadyDone(out: string, run: PlannedRun): number {
  const runDir = path.join(out, 'runs', run.folder);
  if (fs.existsSync(path.join(out, 'eval', run.folder, SUMMARY_FILE)) || fs.existsSync(path.join(runDir, 'summary.json'))) return sum(run.stageSteps);
  const state = new RunDir(runDir).exists() ? new RunDir(runDir).readState() : null;
  return state ? sum(run.stageSteps.slice(0, state.stage)) + state.step : 0;
}

function readEvaluation(file: string): EvaluationSummary {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as EvaluationSummary;
  } catch (err) {
    throw new UserError(`${file}: unreadable evaluation (${(err as Error).message}); delete it to evaluate again`);
  }
}

function readTrainSeconds(runDir: string): number | null {
  try {
    return Math.round((JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as TrainSummary).seconds);
  } catch {
    return null;
  }
}

/** table2.md, the ablation tables and summary.json from the results so far (rewritten after every run). */
function writeOutputs(out: string, ds: Dataset, testCases: number, settings: ExperimentSettings, runs: PlannedRun[], ablations: AblationPlannedRun[],
  results: Map<string, MethodResult & { summary: EvaluationSummary }>, started: number): { table: string } {
  const rowsOf = (list: PlannedRun[]): TableRow[] => list.filter((r) => results.has(r.id)).map((r) => ({ label: r.label, summary: results.get(r.id)!.summary }));
  const structures = ds.structures.map((s) => s.name).join(', ');
  const notes = descriptorsOf(runs).flatMap((d) => (d.describeSettings ? [d.describeSettings(optionsFor(d, settings))] : []));
  const setup = `${ds.name}, ${testCases} test cases (${describeSelection(settings.test)}), trained on ${describeSelection(settings.train)} at ${settings.size}² with ${settings.encoder}, `
    + `batch ${settings.batchSize}, lr ${settings.lr} (${settings.schedule}), ${settings.steps} steps${notes.length ? ` (${notes.join('; ')})` : ''}, seed ${settings.seed}`;
  const table = table2(rowsOf(runs), `# Table II — soft Dice (%) as '${structures}'\n\n${setup}. Columns A1..A${ds.annotators.length}: each method's prediction for that annotator against that annotator's masks; Average: their mean; Mean Voting: the calibrated map against the mean vote. Methods without per-annotator outputs give their one map to every annotator.`);
  writeFileAtomic(path.join(out, 'table2.md'), table);

  const files: Record<string, string> = {};
  for (const d of descriptorsOf(ablations)) {
    Object.assign(files, d.ablations!.tables({
      summary: (id) => results.get(id)?.summary, runs: ablations.filter((a) => a.study === d.name), baseId: d.name,
      structures, pretrained: settings.pretrained !== null,
    }));
  }
  for (const [name, text] of Object.entries(files)) writeFileAtomic(path.join(out, name), text);

  const list = (l: PlannedRun[]) => l.filter((r) => results.has(r.id)).map((r) => withoutSummary(results.get(r.id)!));
  const summary = {
    dataset: ds.name, structures: ds.structures.map((s) => s.name), annotators: ds.annotators, test_cases: testCases, settings,
    methods: list(runs), ablations: list(ablations), tables: ['table2.md', ...Object.keys(files)],
    seconds_this_session: Math.round((Date.now() - started) / 1000), elapsed: formatDuration((Date.now() - started) / 1000),
  };
  writeFileAtomic(path.join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return { table };
}

/** The registered methods the runs belong to, in registry order. */
function descriptorsOf(runs: PlannedRun[]): AnyMethodDescriptor[] {
  const used = new Set(runs.map((r) => resolveMethod(r.method).descriptor));
  return methodDescriptors().filter((d) => used.has(d));
}

/** A result as summary.json lists it: the scores, not the whole evaluation. */
function withoutSummary(r: MethodResult & { summary: EvaluationSummary }): MethodResult {
  const { id, label, run, evaluation, train_seconds, average, mean_voting, per_annotator } = r;
  return { id, label, run, evaluation, train_seconds, average, mean_voting, per_annotator };
}

function describeSelection(sel: { split?: string; subsets?: string[] }): string {
  return sel.subsets?.length ? `subset${sel.subsets.length > 1 ? 's' : ''} ${sel.subsets.join(', ')}` : `split '${sel.split}'`;
}

function pair(s: EvaluationSummary, rec: Record<string, number | null>): string {
  return perStructure(s.structures, (k) => rec[k], percent);
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
