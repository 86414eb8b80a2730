// How a method describes itself: its name and Table II label, the schema of its config.json entry, the
// hyperparameters it adds (each a CLI flag), its stages, and how to build it. The trainer, the
// experiment and the CLI read everything they need about a method from here.
import { z } from 'zod';
import { UserError } from '../errors';
import type { EvaluationSummary } from '../results/summary';
import { parseChoice, parseFloatFlag, parseIntFlag, parseNumberList } from '../util/flags';
import { Method, MethodConfig, StagePlan } from './method';

/** What every method config is built from: the data's annotators and structures and the shared settings. */
export interface MethodContext {
  structures: string[];
  annotators: string[];
  inChannels: number;
  /** Default DEFAULT_BACKBONE's. */
  encoder?: string;
  featureChannels?: number;
  /** Optimiser steps of the method's main stage (AVAP: step 1, backbone + AVM). */
  steps: number;
}

export type OptionValue =
  | { type: 'int'; min: number; max?: number }
  | { type: 'number'; min: number; max: number }
  | { type: 'choice'; choices: readonly string[] }
  /** A comma-separated list of non-negative numbers. */
  | { type: 'numbers' };

/** A hyperparameter of one method: a key of `methodOptions` in code, a flag on `avap train`. */
export interface MethodOption {
  key: string;
  /** e.g. '--trace-weight'. */
  flag: string;
  description: string;
  value: OptionValue;
  /** The default; when it follows from other settings, leave it out and say how in `defaultText`. */
  default?: number | string;
  defaultText?: string;
  /** The step count of an extra stage: `avap experiment --steps N` scales it with the main budget. */
  stageSteps?: boolean;
}

/** A family of methods named NAME:ARG, such as single:K (one method per annotator). */
export interface MethodVariants<C> {
  /** How `--method` spells it, e.g. 'single:K'. */
  usage: string;
  /** Every member for a dataset of `annotators` annotators (what `--methods single` stands for). */
  expand(annotators: number): string[];
  /** ARG (null when only NAME was given) → the settings it fixes; a UserError naming `flag` when malformed. */
  parse(arg: string | null, id: string, annotators: number | undefined, flag: string): Record<string, unknown>;
  /** The row label and method id of one member. */
  label(config: C): string;
  id(config: C): string;
}

/** Runs of a method's ablation study for `avap experiment --ablations`, and the tables they fill. */
export interface AblationStudy {
  /** For --help, e.g. 'AVAP: Tables III (pre-training), IV (…), V (…)'. */
  description: string;
  plan(context: AblationContext): AblationRun[];
  /** File name → Markdown, from the evaluated rows (the method's own default run included). */
  tables(results: AblationResults): Record<string, string>;
}

export interface AblationContext {
  structures: number;
  steps: number;
  /** The experiment's settings of this method's options (e.g. AVAP's preferenceSteps). */
  options: Record<string, unknown>;
  pretrained: boolean;
}

export interface AblationRun {
  /** Unique within the experiment, e.g. 'avap@code'. */
  id: string;
  /** Folder under OUT/runs and OUT/eval. */
  folder: string;
  label: string;
  /** Which of the study's tables it belongs to. */
  table: string;
  /** Training settings it changes: the main stage's steps, training from scratch (no --pretrained weights), and method options. */
  overrides: { steps?: number; fromScratch?: true; methodOptions?: Record<string, unknown> };
}

export interface AblationResults {
  /** The evaluation of a run (the method's default run under `baseId`), when it exists yet. */
  summary(id: string): EvaluationSummary | undefined;
  runs: AblationRun[];
  /** The id of the method's default run, the reference row of every table. */
  baseId: string;
  /** The structures as one caption string, e.g. 'disc, cup'. */
  structures: string;
  pretrained: boolean;
}

export interface MethodDescriptor<C extends MethodConfig = MethodConfig> {
  /** The `--method` value (and config.json's "method"). */
  name: string;
  /** Its row in Table II. */
  label: string;
  /** One line for `--help` and docs. */
  description: string;
  /** config.json's "model" for this method. */
  schema: z.ZodType<C, z.ZodTypeDef, unknown>;
  options?: readonly MethodOption[];
  variants?: MethodVariants<C>;
  /** The config of a new run: `options` are resolved (validated, defaults applied) beforehand. */
  configure(context: MethodContext, options: Record<string, unknown>): C;
  /** The stages a config trains, without building the model. */
  plan(config: C): StagePlan[];
  /** The method with a freshly initialised model (draws from torch's global generator). */
  build(config: C): Method;
  /** The method's own options under each `avap experiment --profile` (the shared budgets are the profile's). */
  experimentProfiles?: Partial<Record<ExperimentProfileName, Record<string, unknown>>>;
  /** A note for the experiment's caption about this method's own budget, e.g. 'AVAP step 2: 30 at lr 0.005'. */
  describeSettings?(options: Record<string, unknown>): string;
  ablations?: AblationStudy;
}

/** The budgets `avap experiment --profile` offers: the paper's, and a short one for a CPU. */
export const EXPERIMENT_PROFILE_NAMES = ['quick', 'full'] as const;
export type ExperimentProfileName = (typeof EXPERIMENT_PROFILE_NAMES)[number];

/** A descriptor of any config type, as the registry holds it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMethodDescriptor = MethodDescriptor<any>;

function describeValue(v: OptionValue): string {
  switch (v.type) {
    case 'int': return v.max === undefined ? `an integer >= ${v.min}` : `an integer in ${v.min}..${v.max}`;
    case 'number': return `a number in ${v.min}..${v.max}`;
    case 'choice': return `one of ${v.choices.join(', ')}`;
    case 'numbers': return 'a list of numbers >= 0';
  }
}

function validValue(v: OptionValue, x: unknown): boolean {
  switch (v.type) {
    case 'int': return Number.isInteger(x) && (x as number) >= v.min && (v.max === undefined || (x as number) <= v.max);
    case 'number': return typeof x === 'number' && Number.isFinite(x) && x >= v.min && x <= v.max;
    case 'choice': return typeof x === 'string' && v.choices.includes(x);
    case 'numbers': return Array.isArray(x) && x.length > 0 && x.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0);
  }
}

/** The flag's text → the option's value; a UserError naming the flag. */
export function parseOptionText(option: MethodOption, raw: string): unknown {
  const v = option.value;
  switch (v.type) {
    case 'int': return parseIntFlag(option.flag, raw, v.min, v.max);
    case 'number': return parseFloatFlag(option.flag, raw, v.min, v.max);
    case 'choice': return parseChoice(option.flag, raw, v.choices);
    case 'numbers': return parseNumberList(option.flag, raw).map((x) => {
      if (x < 0) throw new UserError(`${option.flag} must list numbers >= 0, got '${raw}'`);
      return x;
    });
  }
}

/**
 * Options given in code or by flags → every option of the method with its value or default. An option
 * the method does not have, or a value out of range, is a UserError naming the flag.
 */
export function resolveOptions(descriptor: AnyMethodDescriptor, given: Record<string, unknown> = {}): Record<string, unknown> {
  const options = descriptor.options ?? [];
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    const option = options.find((o) => o.key === key);
    if (!option) {
      const known = options.map((o) => o.key).join(', ') || 'none';
      throw new UserError(`method '${descriptor.name}' has no option '${key}' (its options: ${known})`);
    }
    if (!validValue(option.value, value)) throw new UserError(`${option.flag} must be ${describeValue(option.value)}, got ${JSON.stringify(value)}`);
  }
  const resolved: Record<string, unknown> = {};
  for (const o of options) {
    const value = given[o.key] ?? o.default;
    if (value !== undefined) resolved[o.key] = value;
  }
  return resolved;
}

/** The subset of `shared` that `descriptor` has options for (an experiment's settings serve every method). */
export function optionsFor(descriptor: AnyMethodDescriptor, shared: Record<string, unknown>): Record<string, unknown> {
  const keys = new Set((descriptor.options ?? []).map((o) => o.key));
  return Object.fromEntries(Object.entries(shared).filter(([k]) => keys.has(k)));
}
