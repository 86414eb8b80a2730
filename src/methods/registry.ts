// Methods by name, as plain data: what `avap train --method NAME` can build, and how to rebuild a
// trained run's model from its config.json.
import { z } from 'zod';
import { UserError } from '../errors';
import { DEFAULT_BACKBONE } from '../models/backbone';
import { AvapMethod } from './avap';
import { BaselineConfig } from './baseline';
import { ConfusionMatrixMethod } from './cmNet';
import { LabelSamplingMethod } from './lsUnet';
import { Method } from './method';
import { MultiHeadMethod } from './mhUnet';
import { MultiRaterMethod } from './mrNet';
import { MeanVoteMethod } from './mvUnet';
import { PadlMethod } from './padl';
import { SingleAnnotatorMethod } from './single';

const backboneSchema = z.object({ encoder: z.string(), inChannels: z.number().int().positive(), featureChannels: z.number().int().positive() });

/** AVAP's config: unchanged since the first runs were written, so they still load. */
const avapSchema = z.object({
  method: z.literal('avap'),
  structures: z.array(z.string()).min(1),
  annotators: z.array(z.string()).min(1),
  backbone: backboneSchema,
  avm: z.object({ hidden: z.number().int().positive(), calibration: z.enum(['expectation', 'argmax']) }),
  apm: z.object({ hidden: z.number().int().positive(), conditioning: z.enum(['both', 'code', 'features']) }),
  training: z.object({
    strategy: z.enum(['two-step', 'joint']),
    variationEpochs: z.number().int().nonnegative(),
    preferenceEpochs: z.number().int().nonnegative(),
    jointWeights: z.array(z.number().nonnegative()).optional(),
  }),
});

/** The fields every baseline has (src/methods/baseline.ts). */
const baselineFields = {
  structures: z.array(z.string()).min(1),
  annotators: z.array(z.string()).min(1),
  backbone: backboneSchema,
  training: z.object({ epochs: z.number().int().nonnegative() }),
};

export const methodConfigSchema = z.discriminatedUnion('method', [
  avapSchema,
  z.object({ method: z.literal('single'), annotator: z.number().int().positive(), ...baselineFields }),
  z.object({ method: z.literal('mv-unet'), ...baselineFields }),
  z.object({ method: z.literal('ls-unet'), ...baselineFields }),
  z.object({ method: z.literal('mh-unet'), ...baselineFields }),
  z.object({ method: z.literal('cm-net'), traceWeight: z.number().nonnegative(), ...baselineFields }),
  z.object({ method: z.literal('mr-net'), ...baselineFields }),
  z.object({ method: z.literal('padl'), samples: z.number().int().positive(), ...baselineFields }),
]).superRefine((c, ctx) => {
  if (c.method === 'single' && c.annotator > c.annotators.length) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['annotator'], message: `annotator ${c.annotator} does not exist (the config lists ${c.annotators.length})` });
  }
});
export type MethodConfig = z.infer<typeof methodConfigSchema>;

/** Every method `--method` accepts, in the row order of the paper's Table II. `single:K` stands for M1..MM. */
export const METHODS: Record<string, string> = {
  'single:K': "M_K: Res-U-Net trained on annotator K's masks only (K = 1..M, the paper's M1–M6)",
  'mh-unet': 'MH-UNet: Res-U-Net with one segmentation head per annotator',
  'mv-unet': 'MV-UNet: Res-U-Net trained on the mean vote (soft target)',
  'ls-unet': "LS-UNet: label sampling, a random annotator's mask per image and iteration (Jensen et al. 2019)",
  'cm-net': 'CM-Net: clean segmentation + per-pixel, per-annotator confusion matrices, trace regulariser (Zhang et al. 2020)',
  'mr-net': 'MR-Net: expertise-aware inference, multi-rater reconstruction, agreement-aware refinement (Ji et al. 2021)',
  padl: 'PADL: meta segmentation + per-annotator preference heads with Gaussian stochastic error (Liao et al.)',
  avap: 'AVAP: ResNet34 U-Net + annotator variation (AVM) + annotator preference (APM) heads, two-step training',
};

/** Defaults of the baselines' method-specific settings. */
export const BASELINE_DEFAULTS = { traceWeight: 0.1, padlSamples: 8 };

export interface MethodOptions {
  structures: string[];
  annotators: string[];
  inChannels: number;
  encoder?: string;
  featureChannels?: number;
  avmHidden?: number;
  apmHidden?: number;
  calibration?: 'expectation' | 'argmax';
  conditioning?: 'both' | 'code' | 'features';
  strategy?: 'two-step' | 'joint';
  /** AVAP: epochs of step 1 (or of joint training); every other method: its one stage's epochs. */
  variationEpochs: number;
  preferenceEpochs: number;
  jointWeights?: number[];
}

/** `single:3` → 3; anything else → null. A malformed K is a UserError naming --method. */
export function singleAnnotatorOf(name: string, annotators?: number, flag = '--method'): number | null {
  if (!name.startsWith('single')) return null;
  const m = /^single:(\d+)$/.exec(name);
  const range = annotators !== undefined ? `1..${annotators}` : '1..M';
  if (!m) throw new UserError(`${flag}: '${name}' is not a method; use single:K with K an annotator number (${range})`);
  const k = Number(m[1]);
  if (k < 1 || (annotators !== undefined && k > annotators)) throw new UserError(`${flag} ${name}: annotator ${k} does not exist (the dataset has annotators ${range})`);
  return k;
}

export function methodConfigFor(name: string, o: MethodOptions): MethodConfig {
  const backbone = { encoder: o.encoder ?? DEFAULT_BACKBONE.encoder, inChannels: o.inChannels, featureChannels: o.featureChannels ?? DEFAULT_BACKBONE.featureChannels };
  const baseline: BaselineConfig = { structures: o.structures, annotators: o.annotators, backbone, training: { epochs: o.variationEpochs } };
  const annotator = singleAnnotatorOf(name, o.annotators.length);
  if (annotator !== null) return { method: 'single', annotator, ...baseline };
  switch (name) {
    case 'avap':
      return {
        method: 'avap',
        structures: o.structures,
        annotators: o.annotators,
        backbone,
        avm: { hidden: o.avmHidden ?? 32, calibration: o.calibration ?? 'expectation' },
        apm: { hidden: o.apmHidden ?? 8, conditioning: o.conditioning ?? 'both' },
        training: { strategy: o.strategy ?? 'two-step', variationEpochs: o.variationEpochs, preferenceEpochs: o.preferenceEpochs, ...(o.jointWeights ? { jointWeights: o.jointWeights } : {}) },
      };
    case 'mv-unet':
    case 'ls-unet':
    case 'mh-unet':
    case 'mr-net':
      return { method: name, ...baseline };
    case 'cm-net':
      return { method: 'cm-net', traceWeight: BASELINE_DEFAULTS.traceWeight, ...baseline };
    case 'padl':
      return { method: 'padl', samples: BASELINE_DEFAULTS.padlSamples, ...baseline };
    default:
      throw new UserError(`--method: unknown method '${name}' (known: ${Object.keys(METHODS).join(', ')})`);
  }
}

/** Builds the method (and its freshly initialised model) a config describes. */
export function buildMethod(config: MethodConfig): Method {
  switch (config.method) {
    case 'avap': {
      const { method, training, ...model } = config;
      void method;
      return new AvapMethod(model, training);
    }
    case 'single':
      return new SingleAnnotatorMethod(config);
    case 'mv-unet':
      return new MeanVoteMethod(config);
    case 'ls-unet':
      return new LabelSamplingMethod(config);
    case 'mh-unet':
      return new MultiHeadMethod(config);
    case 'cm-net':
      return new ConfusionMatrixMethod(config);
    case 'mr-net':
      return new MultiRaterMethod(config);
    case 'padl':
      return new PadlMethod(config);
  }
}

export function parseMethodConfig(value: unknown, source: string): MethodConfig {
  const r = methodConfigSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(`${source}: invalid model config at '${issue.path.join('.')}': ${issue.message}`);
  }
  return r.data;
}
