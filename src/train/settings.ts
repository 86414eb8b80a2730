// Every setting `train` takes, declared once: its flag, how the flag's text is read, its default, its
// help, and whether it shapes the result (so a resumed run must keep it). The CLI's flags, the
// library's defaults, the fingerprint `--resume` compares and the flags a resume reports all come
// from this table. A method's own options are declared by the method (its descriptor's options).
import { z } from 'zod';
import { NormalizationKind } from '../data/normalization';
import { UserError } from '../errors';
import { EMPTY_SLICE_RATE, parseSliceAxis } from '../data/volumes';
import { methodUsages } from '../methods/registry';
import { encoderNames } from '../models/encoders/registry';
import { DEFAULT_BACKBONE } from '../models/backbone';
import { MAX_INPUT_SIZE } from '../models/inputSize';
import { DEVICE_CHOICES, DeviceChoice } from '../torch/device';
import { PRECISION_CHOICES, PrecisionChoice } from '../torch/precision';
import { parseChoice, parseFloatFlag, parseIntFlag } from '../util/flags';

export const SCHEDULES = ['constant', 'poly', 'cosine'] as const;
export type Schedule = (typeof SCHEDULES)[number];
export const NORMALIZATION_KINDS: readonly NormalizationKind[] = ['per-pixel', 'per-channel', 'imagenet'];

/** The settings of a run (besides where its data and run folder are). */
export interface TrainSettings {
  /** Training cases: a split, or subsets (default the 'train' split when there is one, else every case). */
  split?: string;
  subsets?: string[];
  /** A registered method id: avap, mv-unet, single:2, … */
  method: string;
  size: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  schedule: Schedule;
  /** Optimiser steps of the method's main stage (AVAP: step 1); a method's further stages have their own options. */
  steps: number;
  encoder: string;
  featureChannels: number;
  /** ImageNet encoder weights (safetensors, torchvision names). */
  pretrained?: string;
  seed: number;
  /** Share of the training selection held out for validation; 'auto' holds out 10% when that makes at least MIN_SELECTION_CASES cases, else none. */
  valFraction: number | 'auto';
  /** 3D volumes: the voxel axis (0 = x, 1 = y, 2 = z) they are sliced across; default z. */
  sliceAxis?: number;
  /** 3D volumes: the share of the slices no rater marks that training keeps. */
  emptySliceRate: number;
  normalization: NormalizationKind;
  augment: boolean;
  /** The convolutions' precision: 'auto' (bf16 on CPUs with bf16 arithmetic, else fp32), 'fp32' or 'bf16'. */
  precision: PrecisionChoice;
  /** Where to compute: 'cpu', 'cuda' (this process's GPU) or 'auto' (cuda when libtorch sees a GPU). */
  device: DeviceChoice;
  /** Continue the run in `out` from its last completed round. */
  resume: boolean;
  /** With resume: the setting flags given now (e.g. ['--seed']); only these are compared with the run's. Default: every setting. */
  givenFlags?: string[];
  /** The method's own hyperparameters by key (e.g. AVAP's { preferenceSteps: 300, preferenceLr: 5e-3 }). */
  methodOptions?: Record<string, unknown>;
}

type SettingKey = Exclude<keyof TrainSettings, 'givenFlags' | 'methodOptions'>;

/** How a setting appears on the command line. */
type FlagForm =
  | { form: 'value'; placeholder: string; parse(text: string): unknown }
  /** Repeatable or comma-separated. */
  | { form: 'list'; placeholder: string }
  /** `--no-<name>` turns a default-on setting off. */
  | { form: 'negated' }
  | { form: 'switch' }
  /** Set by the library only. */
  | { form: 'none' };

export interface TrainingSetting<K extends SettingKey = SettingKey> {
  key: K;
  /** The flag, in its positive spelling (`--augment` for --no-augment): also the setting's name in fingerprint.json. */
  flag: string;
  cli: FlagForm;
  /** For `--help`; a function when it lists what registries hold. */
  help: string | (() => string);
  default?: TrainSettings[K];
  /** Shapes the trained model: recorded in fingerprint.json, and a resumed run must keep it. */
  shapesResult: boolean;
}

const setting = <K extends SettingKey>(s: TrainingSetting<K>): TrainingSetting<K> => s;
const value = (placeholder: string, parse: (text: string) => unknown): FlagForm => ({ form: 'value', placeholder, parse });
const text = (s: string): string => s;

/** --device's help, shared by every command that computes (train, predict, evaluate --model, experiment). */
export const DEVICE_HELP = "where tensors live: 'cpu', 'cuda' (this process's GPU, LOCAL_RANK's when several share a machine; needs a CUDA libtorch) or 'auto' (cuda when libtorch sees a GPU, else cpu)";

/** In the order fingerprint.json records them and `avap train --help` lists them. */
export const TRAINING_SETTINGS = [
  setting({ key: 'method', flag: '--method', cli: value('<name>', text), default: 'avap', shapesResult: true,
    help: () => `method to train: ${methodUsages().join(', ')} (see docs/methods.md)` }),
  setting({ key: 'encoder', flag: '--encoder', cli: value('<name>', (t) => parseChoice('--encoder', t, encoderNames())), default: DEFAULT_BACKBONE.encoder, shapesResult: true,
    help: () => `encoder: ${encoderNames().join(', ')} (the paper: resnet34)` }),
  setting({ key: 'size', flag: '--size', cli: value('<px>', (t) => parseIntFlag('--size', t, 32, MAX_INPUT_SIZE)), default: 256, shapesResult: true,
    help: 'input side (multiple of 32); the paper uses 256' }),
  setting({ key: 'seed', flag: '--seed', cli: value('<n>', (t) => parseIntFlag('--seed', t, 0, 2 ** 31 - 1)), default: 0, shapesResult: true,
    help: 'seed for initialisation, data order, augmentation and held-out validation cases' }),
  setting({ key: 'split', flag: '--split', cli: value('<name>', text), shapesResult: true,
    help: "train on this split of dataset.json (default: 'train' when the dataset has it, else all cases)" }),
  setting({ key: 'subsets', flag: '--subset', cli: { form: 'list', placeholder: '<names>' }, shapesResult: true,
    help: 'train on these RIGA subsets (repeatable or comma-separated), e.g. BinRushed,MESSIDOR' }),
  setting({ key: 'batchSize', flag: '--batch-size', cli: value('<n>', (t) => parseIntFlag('--batch-size', t, 1, 4096)), default: 8, shapesResult: true,
    help: 'images per step' }),
  setting({ key: 'lr', flag: '--lr', cli: value('<x>', (t) => parseFloatFlag('--lr', t, 1e-12, 10)), default: 1e-3, shapesResult: true,
    help: 'Adam learning rate' }),
  setting({ key: 'weightDecay', flag: '--weight-decay', cli: value('<x>', (t) => parseFloatFlag('--weight-decay', t, 0, 10)), default: 1e-5, shapesResult: true,
    help: 'Adam weight decay' }),
  setting({ key: 'schedule', flag: '--schedule', cli: value('<kind>', (t) => parseChoice('--schedule', t, SCHEDULES)), default: 'poly', shapesResult: true,
    help: `learning-rate schedule: ${SCHEDULES.join(', ')}` }),
  setting({ key: 'steps', flag: '--steps', cli: value('<n>', (t) => parseIntFlag('--steps', t, 1)), default: 2000, shapesResult: true,
    help: "optimiser steps of the method's main stage (AVAP: step 1, backbone + AVM), whatever the dataset's size" }),
  setting({ key: 'pretrained', flag: '--pretrained', cli: value('<file>', text), shapesResult: true,
    help: 'ImageNet encoder weights converted from torchvision to safetensors (nothing is downloaded)' }),
  setting({ key: 'valFraction', flag: '--val-fraction', cli: value('<x>', (t) => (t === 'auto' ? 'auto' : parseFloatFlag('--val-fraction', t, 0, 0.99))), default: 'auto', shapesResult: true,
    help: "fraction of the training cases held out for validation, or 'auto': 10% when that makes at least 20 cases (enough to choose weights by), else none and the final weights are kept" }),
  setting({ key: 'sliceAxis', flag: '--slice-axis', cli: value('<axis>', (t) => parseSliceAxis('--slice-axis', t)), shapesResult: true,
    help: '3D volumes: the voxel axis they are trained slice by slice across, x, y or z (default z, the last: the acquisition\'s slices)' }),
  setting({ key: 'emptySliceRate', flag: '--empty-slice-rate', cli: value('<x>', (t) => parseFloatFlag('--empty-slice-rate', t, 0, 1)), default: EMPTY_SLICE_RATE, shapesResult: true,
    help: '3D volumes: the share of the slices no rater marks that training keeps (every marked slice is kept), chosen by --seed' }),
  setting({ key: 'normalization', flag: '--normalization', cli: value('<kind>', (t) => parseChoice('--normalization', t, NORMALIZATION_KINDS)), default: 'per-pixel', shapesResult: true,
    help: "'per-pixel' (paper), 'per-channel' or 'imagenet'" }),
  setting({ key: 'augment', flag: '--augment', cli: { form: 'negated' }, default: true, shapesResult: true,
    help: 'disable flips, rotations, scaling and colour jitter' }),
  setting({ key: 'precision', flag: '--precision', cli: value('<kind>', (t) => parseChoice('--precision', t, PRECISION_CHOICES)), default: 'auto', shapesResult: true,
    help: "convolutions in 'fp32' or 'bf16' (weights, batch norm, losses and the optimiser stay fp32); 'auto': bf16 on CPUs with AVX512-BF16 or AMX, else fp32" }),
  setting({ key: 'device', flag: '--device', cli: value('<kind>', (t) => parseChoice('--device', t, DEVICE_CHOICES)), default: 'auto', shapesResult: false,
    help: DEVICE_HELP }),
  setting({ key: 'featureChannels', flag: '--feature-channels', cli: { form: 'none' }, default: DEFAULT_BACKBONE.featureChannels, shapesResult: false,
    help: "channels of the decoder's last feature map" }),
  setting({ key: 'resume', flag: '--resume', cli: { form: 'switch' }, default: false, shapesResult: false,
    help: 'continue the run in --out from its last completed round of steps' }),
] as const;

/** The settings that have a default (the others are unset unless given). */
export type TrainDefaults = Omit<TrainSettings, 'split' | 'subsets' | 'pretrained' | 'sliceAxis' | 'givenFlags' | 'methodOptions'>;

/**
 * Defaults for a small real dataset trained from scratch (no ImageNet weights): Adam at 1e-3 decayed
 * to zero by the poly schedule over a fixed number of steps, whatever the dataset's size
 * (docs/how-to.md has the measurements behind them).
 */
export const TRAIN_DEFAULTS = Object.freeze(Object.fromEntries(
  TRAINING_SETTINGS.flatMap((s) => (s.default !== undefined ? [[s.key, s.default]] : [])),
)) as Readonly<TrainDefaults>;

/** The settings a resumed run must keep, as (key, flag). */
export function resultShapingSettings(): { key: SettingKey; flag: string }[] {
  return TRAINING_SETTINGS.filter((s) => s.shapesResult).map((s) => ({ key: s.key, flag: s.flag }));
}

/** Why `value` is not a value the setting's flag accepts (its parser's type, range and choices); null when it is. */
export function settingValueProblem(key: SettingKey, value: unknown): string | null {
  const s = TRAINING_SETTINGS.find((x) => x.key === key) as TrainingSetting;
  const cli = s.cli;
  if (cli.form === 'negated' || cli.form === 'switch') return typeof value === 'boolean' ? null : `${s.flag}: expected true or false, got ${JSON.stringify(value)}`;
  if (cli.form === 'list') return Array.isArray(value) && value.every((x) => typeof x === 'string') ? null : `${s.flag}: expected a list of names, got ${JSON.stringify(value)}`;
  if (cli.form === 'none') return typeof value === typeof s.default ? null : `${s.flag}: expected a ${typeof s.default}, got ${JSON.stringify(value)}`;
  if (typeof value !== 'number' && typeof value !== 'string') return `${s.flag}: expected a value, got ${JSON.stringify(value)}`;
  try {
    return cli.parse(String(value)) === value ? null : `${s.flag}: expected a ${typeof cli.parse(String(value))}, got ${JSON.stringify(value)}`;
  } catch (err) {
    if (err instanceof UserError) return err.message;
    throw err;
  }
}

/**
 * A setting's value as a run's config.json records it: a zod schema accepting what the setting's flag
 * accepts, so config.json is checked by the same rules as the command line.
 */
export function settingSchema<K extends SettingKey>(key: K): z.ZodType<Exclude<TrainSettings[K], undefined>> {
  return z.custom<Exclude<TrainSettings[K], undefined>>((v) => settingValueProblem(key, v) === null, (v: unknown) => ({ message: settingValueProblem(key, v) ?? '' }));
}
