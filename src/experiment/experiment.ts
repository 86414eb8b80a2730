// `avap experiment`: every method of the paper's Table II trained on the same split, seeds and budgets
// by the shared trainer, each evaluated on the same test cases by `evaluateModel`, and the results laid
// out like Table II (and, with ablations, Tables III–V).
//   OUT/experiment.json    the shared settings (a rerun must repeat them) and each (budget, seed)'s folder
//   OUT/runs/<method>/     the run folders (`avap train` layout) of a one-budget, one-seed experiment;
//                          OUT/steps-<n>/seed-<s>/runs/<method>/ for a sweep or several seeds (settings.ts)
//   OUT/eval/<method>/     the evaluations beside them (`avap evaluate` layout: summary.json, per_case.csv, report.md)
//   OUT/table2.md          Table II at the largest budget (mean ± sd over seeds; † not converged);
//                          OUT/table2-steps<n>.md per budget of a sweep
//   OUT/differences.md     each method's difference to the best, with paired bootstrap intervals
//   OUT/curves.json, curves.png   learning curves; OUT/sweep.json, sweep.png with several budgets
//   OUT/table3.md … table5.md (with --ablations), OUT/summary.json
// A method whose evaluation exists is reused; a run with a checkpoint but no result resumes. So an
// interrupted experiment continues where it stopped, and adding methods, budgets or seeds only trains
// the new runs.
import type { DeviceChoice } from '../torch/device';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { CaseRecord, CaseSelection, Dataset, describeSelection, openDataset, selectCases } from '../data/dataset';
import { EvaluationSummary } from '../results/summary';
import { SUMMARY_FILE } from '../eval/report';
import { evaluateModel } from '../eval/evaluateModel';
import { QUBIQ_SUMMARY_FILE, scoreRunQubiq } from '../eval/qubiq';
import { AnyMethodDescriptor, optionsFor } from '../methods/descriptor';
import { defaultMethods, methodDescriptors, resolveMethod } from '../methods/registry';
import { checkInputSize } from '../models/encoders/registry';
import { describeTrainEvent } from '../train/events';
import { RunDir } from '../train/run';
import { TrainOptions, TrainSummary, train } from '../train/trainer';
import { parseIntList } from '../util/flags';
import { percent, perStructure, plural } from '../util/format';
import { RunCurve, plottedValue, readRunCurve } from './curves';
import { BOOTSTRAP_RESAMPLES, Difference, METRICS, METRIC_TITLES, MethodEvaluations, differencesTable, differencesToBest, meanOf, sdOf } from './differences';
import { ChartPanel, writeLineChart } from './figures';
import { AblationPlannedRun, PlanContext, PlannedRun, planAblations, planMethods } from './plan';
import { EXPERIMENT_PROFILE_NAMES, ExperimentProfile, ExperimentProfileName, experimentProfile } from './profiles';
import { ExperimentProgress, formatDuration } from './progress';
import { Combination, ExperimentSettings, SharedSettings, combinationDir, combinationSettings, recordCombinations, sharedMethodOptions, stageOptionsAt } from './settings';
import { MethodRow, MethodScores, table2 } from '../results/tables';
import { problemText, readJsonText } from '../io/readBounded';

export interface ExperimentOptions {
  data: string;
  out: string;
  /** Method names (`single` = single:1..single:M); default every registered method. */
  methods?: string[];
  profile: ExperimentProfileName;
  /**
   * Overrides of the profile: main-stage steps, or several (a budget sweep: each budget trained and
   * tabled). A budget also scales the methods' further stages (AVAP's step 2), keeping the profile's ratio.
   */
  steps?: number | number[];
  size?: number;
  encoder?: string;
  /** The seed of every run (default 0); or `seeds`, not both. */
  seed?: number;
  /** Several seeds: every method is trained once per seed, and the tables show mean ± sd. */
  seeds?: number[];
  ablations: boolean;
  /** The test cases: a split (default 'test') or subsets (e.g. RIGA's Magrabia). */
  testSplit?: string;
  testSubsets?: string[];
  /** The training cases (default the dataset's 'train' split; with --test-subset, the other subsets). */
  trainSplit?: string;
  pretrained?: string;
  /** Where every run trains and is evaluated (default 'auto': a GPU when libtorch sees one). */
  device?: DeviceChoice;
  /** Status lines (default: stderr). */
  print?: (line: string) => void;
}

/** What a result says of its runs: the folders, the training time, the scores and the convergence verdict. */
interface RunsResult extends MethodScores {
  /** The run and evaluation folders (of a method over several seeds: the first seed's; all are in `seeds`). */
  run: string;
  evaluation: string;
  /** Training time (all sessions; of a method over several seeds: all of them), seconds; null when not recorded. */
  train_seconds: number | null;
  /** Still improving over the last quarter of a stage's steps (of a method: in any seed; marked †); null: too few rounds to tell. */
  still_improving: boolean | null;
  /** The challenge's score when the data has one (QUBIQ: overall and per task, fractions; of a method: means over seeds). */
  qubiq?: { overall: number; per_task: Record<string, number> };
}

/** One method's run at one seed. */
export interface SeedResult extends RunsResult {
  seed: number;
}

/** A method at one budget: scores are means over its seeds (with one seed, that seed's scores). */
export interface MethodResult extends RunsResult {
  id: string;
  label: string;
  /** Sample standard deviations over the seeds; null with one seed. */
  sd: MethodScores | null;
  seeds: SeedResult[];
}

export interface BudgetResult {
  steps: number;
  /** Its Table II file. */
  table: string;
  methods: MethodResult[];
  /** Each method's difference to the best per structure and metric (fractions), with 95% paired bootstrap intervals. */
  differences: Difference[];
}

export interface ExperimentResult {
  out: string;
  /** Table II at the largest budget. */
  table2: string;
  /** The methods at the largest budget. */
  methods: MethodResult[];
  ablations: MethodResult[];
  budgets: BudgetResult[];
  seconds: number;
}

/** A run of the experiment: a planned run at one (budget, seed). */
interface Job {
  run: PlannedRun;
  combination: Combination;
  runDir: string;
  evalDir: string;
}

type Evaluated = SeedResult & { summary: EvaluationSummary; curve: RunCurve };

export async function runExperiment(opts: ExperimentOptions): Promise<ExperimentResult> {
  const print = opts.print ?? ((line: string) => process.stderr.write(line + '\n'));
  const started = Date.now();
  const out = path.resolve(opts.out);
  const profile = resolveProfile(opts);
  const budgets = budgetList(opts, profile);
  const seeds = seedList(opts);
  const ds = await openDataset(opts.data);
  // Its tables score 2D cases; a volume set is scored per volume by evaluate --format qubiq.
  if (ds.volumes) throw new UserError(`--data: ${opts.data} holds 3D volumes; avap experiment compares methods on 2D cases (train each method and score it with avap evaluate --format qubiq)`);
  const { trainSelection, testSelection, testCases } = chooseCases(ds, opts);
  const shared = resolveShared(opts, profile, trainSelection, testSelection);
  const largest = budgets[budgets.length - 1];

  const contextAt = (steps: number): PlanContext => ({
    structures: ds.structures.map((s) => s.name), annotators: ds.annotators, inChannels: ds.channels,
    encoder: shared.encoder, steps, options: { ...shared, ...stageOptionsAt(profile, steps) },
  });
  const plans = new Map(budgets.map((steps) => [steps, planMethods(opts.methods ?? defaultMethods(), contextAt(steps))]));
  // Ablations at the largest budget and the first seed: their tables compare variants of one method, not seeds or budgets.
  const ablations = opts.ablations ? planAblations(contextAt(largest), shared.pretrained !== null) : [];
  // An ablation table compares against its method's default run, so that is trained too.
  const studies = [...new Set(ablations.map((a) => a.study))];
  for (const [steps, runs] of plans) {
    if (studies.some((m) => !runs.some((r) => r.id === m))) plans.set(steps, planMethods([...runs.map((r) => r.id), ...studies], contextAt(steps)));
  }
  const combinations = recordCombinations(out, shared, budgets.flatMap((steps) => seeds.map((seed) => ({ steps, seed, stageOptions: stageOptionsAt(profile, steps) }))));
  const jobOf = (run: PlannedRun, combination: Combination): Job => ({
    run, combination, runDir: combinationDir(out, combination, 'runs', run.folder), evalDir: combinationDir(out, combination, 'eval', run.folder),
  });
  const ablationCombination = combinations.find((c) => c.steps === largest && c.seed === seeds[0])!;
  const jobs: Job[] = [
    ...combinations.flatMap((c) => plans.get(c.steps)!.map((r) => jobOf(r, c))),
    ...ablations.map((a) => jobOf(a, ablationCombination)),
  ];

  const progress = new ExperimentProgress(jobs.reduce((n, j) => n + sum(j.run.stageSteps), 0));
  for (const j of jobs) progress.skip(stepsAlreadyDone(j));
  const several = combinations.length > 1;
  const budgetText = budgets.length > 1 ? `steps ${budgets.join(', ')}` : `${largest} steps`;
  const seedText = seeds.length > 1 ? `, seeds ${seeds.join(', ')}` : '';
  const ids = [...new Set(jobs.map((j) => j.run.id))];
  print(`experiment: ${plural(jobs.length, 'run')} (${ids.join(', ')}${several ? ` at ${plural(combinations.length, 'budget-seed combination')}` : ''}), ${ds.name}: `
    + `${testCases.length} test cases (${describeSelection(testSelection)}), ${shared.size}², ${shared.encoder}, ${budgetText}${seedText}; ${progress.describe()}`);

  const results = new Map<Job, Evaluated>();
  const outputs: OutputContext = { out, ds, testCases: testCases.length, shared, budgets, seeds, combinations, plans, ablations, ablationCombination, results, jobs, started };
  for (const [i, job] of jobs.entries()) {
    const { run, combination, runDir, evalDir } = job;
    const tag = `[${i + 1}/${jobs.length} ${run.id}${several ? `, ${combination.steps} steps, seed ${combination.seed}` : ''}]`;
    const evalFile = path.join(evalDir, SUMMARY_FILE);
    if (!fs.existsSync(evalFile)) {
      await ensureTrained(run, runDir, opts.data, combinationSettings(shared, combination), trainSelection, progress, (line) => print(`${tag} ${line}`), opts.device);
      print(`${tag} evaluating on ${testCases.length} test cases`);
      await evaluateModel(runDir, ds, testCases, evalDir, { label: run.label }, opts.device);
    } else {
      print(`${tag} reusing ${path.relative(out, evalDir)}`);
    }
    const qubiqFile = path.join(evalDir, QUBIQ_SUMMARY_FILE);
    if (ds.challengeScore === 'qubiq' && !fs.existsSync(qubiqFile)) await scoreRunQubiq(runDir, ds, testCases, evalDir, run.label, opts.device);
    const summary = readEvaluation(evalFile);
    const curve = readRunCurve(runDir);
    results.set(job, {
      seed: combination.seed, run: runDir, evaluation: evalDir, train_seconds: readTrainSeconds(runDir),
      average: summary.average, mean_voting: summary.mean_voting, per_annotator: summary.per_annotator, still_improving: curve.still_improving, summary, curve,
      ...(fs.existsSync(qubiqFile) ? { qubiq: (JSON.parse(fs.readFileSync(qubiqFile, 'utf8')) as { qubiq: { overall: number; per_task: Record<string, number> } }).qubiq } : {}),
    });
    await writeOutputs(outputs);
    print(`${tag} done: Average ${pair(summary, summary.average)}, Mean Voting ${pair(summary, summary.mean_voting)}; ${progress.describe()}`);
  }
  const written = await writeOutputs(outputs);
  const top = written.budgets[written.budgets.length - 1];
  return {
    out, table2: written.table, methods: top.methods, ablations: written.ablations, budgets: written.budgets,
    seconds: (Date.now() - started) / 1000,
  };
}

/** Test cases from --test-split/--test-subset; training cases disjoint from them (never trained on). */
function chooseCases(ds: Dataset, opts: ExperimentOptions): { trainSelection: CaseSelection; testSelection: CaseSelection; testCases: CaseRecord[] } {
  if (opts.testSplit && opts.testSubsets?.length) throw new UserError('--test-split and --test-subset cannot be combined');
  const testSelection = opts.testSubsets?.length ? { subsets: opts.testSubsets } : { split: opts.testSplit ?? 'test' };
  if (testSelection.split && !ds.splits[testSelection.split]) {
    throw new UserError(`--test-split: ${opts.data} has no split '${testSelection.split}' (known: ${Object.keys(ds.splits).join(', ') || 'none'}); pass --test-split or --test-subset`);
  }
  const testCases = selectCases(ds, testSelection);
  if (testCases.length === 0) throw new UserError(`--test-split/--test-subset: the test selection (${describeSelection(testSelection)}) of ${opts.data} holds no cases`);

  let trainSelection: CaseSelection;
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

function resolveProfile(opts: ExperimentOptions): ExperimentProfile {
  if (!EXPERIMENT_PROFILE_NAMES.includes(opts.profile)) throw new UserError(`--profile must be one of ${EXPERIMENT_PROFILE_NAMES.join(', ')}, got '${opts.profile}'`);
  return experimentProfile(opts.profile);
}

function resolveShared(opts: ExperimentOptions, profile: ExperimentProfile, train: CaseSelection, test: CaseSelection): SharedSettings {
  const size = opts.size ?? profile.size;
  const encoder = opts.encoder ?? profile.encoder;
  checkInputSize('--size', size, encoder);
  if (opts.pretrained && !fs.existsSync(opts.pretrained)) throw new UserError(`--pretrained: ${opts.pretrained}: file not found`);
  return {
    data: path.resolve(opts.data), train, test, size, batchSize: profile.batchSize, lr: profile.lr, schedule: profile.schedule, weightDecay: profile.weightDecay,
    encoder, pretrained: opts.pretrained ? path.resolve(opts.pretrained) : null, ...sharedMethodOptions(profile),
  };
}

/** The budgets, smallest first (so a sweep's first complete table comes early); each a positive integer, each once. */
function budgetList(opts: ExperimentOptions, profile: ExperimentProfile): number[] {
  const given = opts.steps === undefined ? [profile.steps] : Array.isArray(opts.steps) ? opts.steps : [opts.steps];
  if (given.length === 0) throw new UserError('--steps: the list of budgets is empty');
  return parseIntList('--steps', given.join(','), 1).sort((x, y) => x - y);
}

/** The seeds, in the order given; each a non-negative integer, each once. */
function seedList(opts: ExperimentOptions): number[] {
  if (opts.seed !== undefined && opts.seeds !== undefined) throw new UserError('--seed and --seeds cannot be combined; give the seeds as one list');
  const given = opts.seeds ?? [opts.seed ?? 0];
  if (given.length === 0) throw new UserError('--seeds: the list of seeds is empty');
  return parseIntList(opts.seeds ? '--seeds' : '--seed', given.join(','), 0, 2 ** 31 - 1);
}

/** Trains the run, resuming it when it has started; a finished run (summary.json) is left alone. */
async function ensureTrained(run: PlannedRun, runDir: string, data: string, s: ExperimentSettings, selection: ExperimentSettings['train'],
  progress: ExperimentProgress, print: (line: string) => void, device?: DeviceChoice): Promise<TrainSummary | null> {
  if (fs.existsSync(path.join(runDir, 'summary.json'))) return null;
  const { descriptor } = resolveMethod(run.method);
  let roundFrom = 0;
  const options: TrainOptions = {
    data, out: runDir, ...selection, method: run.method,
    size: s.size, batchSize: s.batchSize, lr: s.lr, weightDecay: s.weightDecay, schedule: s.schedule, steps: run.overrides.steps ?? s.steps,
    encoder: s.encoder, seed: s.seed, device, pretrained: run.overrides.fromScratch ? undefined : s.pretrained ?? undefined,
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
function stepsAlreadyDone({ run, runDir, evalDir }: Job): number {
  if (fs.existsSync(path.join(evalDir, SUMMARY_FILE)) || fs.existsSync(path.join(runDir, 'summary.json'))) return sum(run.stageSteps);
  const state = new RunDir(runDir).exists() ? new RunDir(runDir).readState() : null;
  return state ? sum(run.stageSteps.slice(0, state.stage)) + state.step : 0;
}

function readEvaluation(file: string): EvaluationSummary {
  try {
    return readJsonText(file, 'an evaluation summary') as EvaluationSummary;
  } catch (err) {
    throw new UserError(`${file}: unreadable evaluation (${err instanceof UserError ? problemText(err, file) : (err as Error).message}); delete it to evaluate again`);
  }
}

function readTrainSeconds(runDir: string): number | null {
  try {
    return Math.round((readJsonText(path.join(runDir, 'summary.json'), 'a training summary') as TrainSummary).seconds);
  } catch {
    return null;
  }
}

interface OutputContext {
  out: string;
  ds: Dataset;
  testCases: number;
  shared: SharedSettings;
  budgets: number[];
  seeds: number[];
  combinations: Combination[];
  plans: Map<number, PlannedRun[]>;
  ablations: AblationPlannedRun[];
  ablationCombination: Combination;
  jobs: Job[];
  results: Map<Job, Evaluated>;
  started: number;
}

/**
 * The tables, differences, curves, sweep and summary.json from the results so far (rewritten after
 * every run, so an interrupted experiment leaves them describing what it finished).
 */
async function writeOutputs(ctx: OutputContext): Promise<{ table: string; budgets: BudgetResult[]; ablations: MethodResult[] }> {
  const { out, ds, shared, budgets, seeds } = ctx;
  const structures = ds.structures.map((s) => s.name);
  const evaluated = (run: PlannedRun, combination?: Combination) => ctx.jobs
    .filter((j) => j.run === run && (!combination || j.combination === combination)).flatMap((j) => ctx.results.get(j) ?? []);

  const tables: Record<string, string> = {};
  const budgetResults: BudgetResult[] = budgets.map((steps) => {
    const runs = ctx.plans.get(steps)!.filter((r) => evaluated(r).length > 0);
    const methods = runs.map((r) => methodResult(r, evaluated(r)));
    const differences = differencesToBest(runs.map((r): MethodEvaluations => ({ id: r.id, label: r.label, bySeed: new Map(evaluated(r).map((e) => [e.seed, e.summary])) })), structures);
    const contender = (id: string, metric: 'average' | 'mean_voting') => Object.fromEntries(structures.map((s) => [s, differences.some((d) => d.method === id && d.structure === s && d.metric === metric && d.contender)]));
    const rows: MethodRow[] = methods.map((m) => ({
      label: m.label, mean: m, sd: m.sd, stillImproving: m.still_improving === true,
      contender: { average: contender(m.id, 'average'), mean_voting: contender(m.id, 'mean_voting') },
    }));
    const file = budgets.length > 1 ? `table2-steps${steps}.md` : 'table2.md';
    tables[file] = table2(rows, structures, ds.annotators.length, table2Caption(ctx, steps));
    return { steps, table: file, methods, differences };
  });
  const table = tables[budgetResults[budgetResults.length - 1].table];
  if (budgets.length > 1) tables['table2.md'] = table;
  const qubiqTable = challengeTable(ctx, budgetResults[budgetResults.length - 1]);
  if (qubiqTable) tables['qubiq.md'] = qubiqTable;
  for (const [name, text] of Object.entries(tables)) writeFileAtomic(path.join(out, name), text);
  writeFileAtomic(path.join(out, 'differences.md'), differencesMarkdown(ctx, budgetResults));

  const files: Record<string, string> = {};
  const ablationSummary = (id: string) => ctx.results.get(ctx.jobs.find((j) => j.run.id === id && j.combination === ctx.ablationCombination)!)?.summary;
  for (const d of descriptorsOf(ctx.ablations)) {
    Object.assign(files, d.ablations!.tables({
      summary: ablationSummary, runs: ctx.ablations.filter((a) => a.study === d.name), baseId: d.name,
      structures: structures.join(', '), pretrained: shared.pretrained !== null,
    }));
  }
  for (const [name, text] of Object.entries(files)) writeFileAtomic(path.join(out, name), text);
  const ablations = ctx.ablations.filter((r) => evaluated(r).length > 0).map((r) => methodResult(r, evaluated(r)));

  const figures = await writeCurves(ctx);
  if (budgets.length > 1) figures.push(...await writeSweep(ctx, budgetResults));
  const top = budgetResults[budgetResults.length - 1];
  const summary = {
    dataset: ds.name, structures, annotators: ds.annotators, test_cases: ctx.testCases,
    settings: ctx.combinations.length === 1 ? combinationSettings(shared, ctx.combinations[0]) : { ...shared, steps: budgets, seeds },
    seeds, methods: top.methods, ablations, budgets: budgetResults,
    tables: [...Object.keys(tables), ...Object.keys(files)], differences: 'differences.md', figures,
    seconds_this_session: Math.round((Date.now() - ctx.started) / 1000), elapsed: formatDuration((Date.now() - ctx.started) / 1000),
  };
  writeFileAtomic(path.join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return { table, budgets: budgetResults, ablations };
}

/** QUBIQ's score per method at the largest budget (qubiq.md), when the data is judged by it; null otherwise. */
function challengeTable(ctx: OutputContext, top: BudgetResult): string | null {
  const methods = top.methods.filter((m) => m.qubiq);
  if (methods.length === 0) return null;
  const tasks = Object.keys(methods[0].qubiq!.per_task);
  const pct = (v: number | null) => (v === null || Number.isNaN(v) ? '-' : (100 * v).toFixed(2));
  return [
    `# QUBIQ score (%), ${ctx.ds.name}, ${ctx.testCases} test cases (${describeSelection(ctx.shared.test)}), ${plural(top.steps, 'step')}${ctx.seeds.length > 1 ? `, mean over seeds ${ctx.seeds.join(', ')}` : ''}`,
    '',
    `| method | ${tasks.join(' | ')} | QUBIQ | ${tasks.map((t) => `${t} Mean Voting`).join(' | ')} |`,
    `|${'---|'.repeat(2 * tasks.length + 2)}`,
    ...methods.map((m) => `| ${m.label} | ${tasks.map((t) => pct(m.qubiq!.per_task[t])).join(' | ')} | ${pct(m.qubiq!.overall)} | ${tasks.map((t) => pct(m.mean_voting[t])).join(' | ')} |`),
    '',
    'QUBIQ: the raters\' mean as ground truth, Dice at thresholds 0.1…0.9 averaged, then over cases and tasks (docs/data.md). Mean Voting: the paper\'s soft Dice against the same mean.',
    '',
  ].join('\n');
}

/** A method's result at one budget from its evaluated seeds: means, standard deviations, and whether any seed was still improving. */
function methodResult(run: PlannedRun, seeds: Evaluated[]): MethodResult {
  const structures = seeds[0].summary.structures;
  const M = seeds[0].summary.annotators.length;
  const over = (f: (x: (number | null)[]) => number | null) => ({
    average: Object.fromEntries(structures.map((s) => [s, f(seeds.map((e) => e.average[s]))])),
    mean_voting: Object.fromEntries(structures.map((s) => [s, f(seeds.map((e) => e.mean_voting[s]))])),
    per_annotator: Object.fromEntries(structures.map((s) => [s, Array.from({ length: M }, (_, k) => f(seeds.map((e) => e.per_annotator[s]?.[k] ?? null)))])),
  });
  const seconds = seeds.map((e) => e.train_seconds);
  const scored = seeds.flatMap((e) => (e.qubiq ? [e.qubiq] : []));
  const qubiq = scored.length === seeds.length && scored.length > 0
    ? { overall: meanOf(scored.map((q) => q.overall)) as number, per_task: Object.fromEntries(Object.keys(scored[0].per_task).map((t) => [t, meanOf(scored.map((q) => q.per_task[t])) as number])) }
    : undefined;
  return {
    ...(qubiq ? { qubiq } : {}),
    id: run.id, label: run.label, run: seeds[0].run, evaluation: seeds[0].evaluation,
    train_seconds: seconds.includes(null) ? null : sum(seconds as number[]),
    ...over(meanOf), sd: seeds.length > 1 ? over(sdOf) : null,
    still_improving: seeds.some((e) => e.still_improving === true) ? true : seeds.some((e) => e.still_improving === false) ? false : null,
    seeds: seeds.map(({ summary: _summary, curve: _curve, ...rest }) => rest),
  };
}

function table2Caption(ctx: OutputContext, steps: number): string {
  const { ds, shared, seeds } = ctx;
  const combination = ctx.combinations.find((c) => c.steps === steps)!;
  const settings = combinationSettings(shared, combination);
  const notes = descriptorsOf(ctx.plans.get(steps)!).flatMap((d) => (d.describeSettings ? [d.describeSettings(optionsFor(d, settings))] : []));
  const seedText = seeds.length > 1 ? `seeds ${seeds.join(', ')} (each cell: mean ± standard deviation over the seeds)` : `seed ${seeds[0]}`;
  const setup = `${ds.name}, ${ctx.testCases} test cases (${describeSelection(shared.test)}), trained on ${describeSelection(shared.train)} at ${shared.size}² with ${shared.encoder}, `
    + `batch ${shared.batchSize}, lr ${shared.lr} (${shared.schedule}), ${plural(steps, 'step')}${notes.length ? ` (${notes.join('; ')})` : ''}, ${seedText}`;
  return `# Table II — soft Dice (%) as '${ds.structures.map((s) => s.name).join(', ')}'\n\n${setup}. Columns A1..A${ds.annotators.length}: each method's prediction for that annotator against that annotator's masks; Average: their mean; Mean Voting: the calibrated map against the mean vote. Methods without per-annotator outputs give their one map to every annotator. `
    + 'Bold: the best mean of a column; in Average and Mean Voting, also every method whose 95% paired bootstrap interval of the difference to the best reaches 0 (differences.md).';
}

function differencesMarkdown(ctx: OutputContext, budgets: BudgetResult[]): string {
  const seedText = ctx.seeds.length > 1 ? `the test cases and the seeds (${ctx.seeds.join(', ')})` : 'the test cases';
  const lines = ['# Differences to the best method — soft Dice points, paired bootstrap 95% intervals', '',
    `Per structure and metric, the best method is the one with the highest mean; each other method's difference to it (method − best) `
    + `is the mean of the paired per-case differences, and its interval the 2.5th and 97.5th percentiles of ${BOOTSTRAP_RESAMPLES} resamples of ${seedText}, `
    + 'the same resampled cases for both methods. An interval that reaches 0 means the data cannot tell the method from the best; such cells are bold in Table II.', ''];
  for (const b of budgets) {
    if (budgets.length > 1) lines.push(`## ${plural(b.steps, 'step')}`, '');
    lines.push(...(b.differences.length ? differencesTable(b.differences) : ['(no method evaluated yet)']), '');
  }
  return lines.join('\n');
}

/** OUT/curves.json (every run's rounds) and OUT/curves.png (a panel per budget, a line per method, averaged over seeds). */
async function writeCurves(ctx: OutputContext): Promise<string[]> {
  const done = ctx.jobs.filter((j) => ctx.results.has(j));
  const curves = done.map((j) => ({ job: j, curve: ctx.results.get(j)!.curve }));
  const validation = curves.some((c) => c.curve.points.length > 0) && curves.every((c) => c.curve.points.every((p) => p.mean_voting !== null && p.average !== null));
  writeFileAtomic(path.join(ctx.out, 'curves.json'), JSON.stringify({
    plotted: validation ? 'validation: mean of Mean Voting and Average over the held-out cases' : 'training loss',
    runs: curves.map(({ job, curve }) => ({
      method: job.run.id, label: job.run.label, ablation: !ctx.plans.get(job.combination.steps)!.includes(job.run),
      steps: job.combination.steps, seed: job.combination.seed, run: path.relative(ctx.out, job.runDir) || '.', ...curve,
    })),
  }, null, 2) + '\n');
  const yLabel = validation ? 'validation (Mean Voting + Average) / 2, %' : 'training loss (mean over each round)';
  const panels: ChartPanel[] = ctx.budgets.map((steps) => ({
    title: `${plural(steps, 'step')}${ctx.seeds.length > 1 ? `, mean of ${plural(ctx.seeds.length, 'seed')}` : ''}`, xLabel: "optimiser steps (all of a method's stages)", yLabel,
    series: ctx.plans.get(steps)!.map((run) => ({ name: run.label, points: meanCurve(curves.filter((c) => c.job.run === run).map((c) => c.curve), validation) })),
  }));
  await writeLineChart(path.join(ctx.out, 'curves.png'), panels, Math.min(3, panels.length));
  return ['curves.json', 'curves.png'];
}

/** [step, value] of each logged round, averaged over runs (seeds log the same steps); validation scores in percent. */
function meanCurve(curves: RunCurve[], validation: boolean): [number, number][] {
  const byStep = new Map<number, number[]>();
  for (const c of curves) for (const p of c.points) byStep.set(p.step, [...(byStep.get(p.step) ?? []), plottedValue(p, validation) * (validation ? 100 : 1)]);
  return [...byStep].sort(([a], [b]) => a - b).map(([step, values]) => [step, meanOf(values)!]);
}

/** OUT/sweep.json and OUT/sweep.png: test Average and Mean Voting per structure against the budget, one line per method. */
async function writeSweep(ctx: OutputContext, budgets: BudgetResult[]): Promise<string[]> {
  const structures = ctx.ds.structures.map((s) => s.name);
  const ids = [...new Set(budgets.flatMap((b) => b.methods.map((m) => m.id)))];
  const methods = ids.map((id) => ({
    id, label: budgets.flatMap((b) => b.methods).find((m) => m.id === id)!.label,
    budgets: budgets.flatMap((b) => b.methods.filter((m) => m.id === id).map((m) => ({
      steps: b.steps, seeds: m.seeds.length, average: m.average, mean_voting: m.mean_voting, sd: m.sd ? { average: m.sd.average, mean_voting: m.sd.mean_voting } : null, still_improving: m.still_improving,
    }))),
  }));
  writeFileAtomic(path.join(ctx.out, 'sweep.json'), JSON.stringify({ steps: ctx.budgets, seeds: ctx.seeds, methods }, null, 2) + '\n');
  const panels: ChartPanel[] = METRICS.flatMap((metric) => structures.map((s) => ({
    title: `${METRIC_TITLES[metric]}, ${s}`, xLabel: 'main-stage steps (log scale)', yLabel: 'test soft Dice (%)', logX: true,
    series: methods.map((m) => ({ name: m.label, points: m.budgets.map((b): [number, number] => [b.steps, 100 * (b[metric][s] ?? NaN)]) })),
  })));
  await writeLineChart(path.join(ctx.out, 'sweep.png'), panels, structures.length);
  return ['sweep.json', 'sweep.png'];
}

/** The registered methods the runs belong to, in registry order. */
function descriptorsOf(runs: PlannedRun[]): AnyMethodDescriptor[] {
  const used = new Set(runs.map((r) => resolveMethod(r.method).descriptor));
  return methodDescriptors().filter((d) => used.has(d));
}

function pair(s: EvaluationSummary, rec: Record<string, number | null>): string {
  return perStructure(s.structures, (k) => rec[k], percent);
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
