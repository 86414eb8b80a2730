// Methods by name, as plain data: what `avap train --method NAME` can build, and how to rebuild a
// trained run's model from its config.json.
import { z } from 'zod';
import { UserError } from '../errors';
import { DEFAULT_BACKBONE } from '../models/backbone';
import { AvapMethod } from './avap';
import { Method } from './method';

export const methodConfigSchema = z.object({
  method: z.literal('avap'),
  structures: z.array(z.string()).min(1),
  annotators: z.array(z.string()).min(1),
  backbone: z.object({ encoder: z.string(), inChannels: z.number().int().positive(), featureChannels: z.number().int().positive() }),
  avm: z.object({ hidden: z.number().int().positive(), calibration: z.enum(['expectation', 'argmax']) }),
  apm: z.object({ hidden: z.number().int().positive(), conditioning: z.enum(['both', 'code', 'features']) }),
  training: z.object({
    strategy: z.enum(['two-step', 'joint']),
    variationEpochs: z.number().int().nonnegative(),
    preferenceEpochs: z.number().int().nonnegative(),
    jointWeights: z.array(z.number().nonnegative()).optional(),
  }),
});
export type MethodConfig = z.infer<typeof methodConfigSchema>;

export const METHODS: Record<string, string> = {
  avap: 'AVAP: ResNet34 U-Net + annotator variation (AVM) + annotator preference (APM) heads, two-step training',
};

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
  variationEpochs: number;
  preferenceEpochs: number;
  jointWeights?: number[];
}

export function methodConfigFor(name: string, o: MethodOptions): MethodConfig {
  if (!(name in METHODS)) throw new UserError(`--method: unknown method '${name}' (known: ${Object.keys(METHODS).join(', ')})`);
  return {
    method: 'avap',
    structures: o.structures,
    annotators: o.annotators,
    backbone: { encoder: o.encoder ?? DEFAULT_BACKBONE.encoder, inChannels: o.inChannels, featureChannels: o.featureChannels ?? DEFAULT_BACKBONE.featureChannels },
    avm: { hidden: o.avmHidden ?? 32, calibration: o.calibration ?? 'expectation' },
    apm: { hidden: o.apmHidden ?? 8, conditioning: o.conditioning ?? 'both' },
    training: { strategy: o.strategy ?? 'two-step', variationEpochs: o.variationEpochs, preferenceEpochs: o.preferenceEpochs, ...(o.jointWeights ? { jointWeights: o.jointWeights } : {}) },
  };
}

/** Builds the method (and its freshly initialised model) a config describes. */
export function buildMethod(config: MethodConfig): Method {
  const { method, training, ...model } = config;
  void method;
  return new AvapMethod(model, training);
}

export function parseMethodConfig(value: unknown, source: string): MethodConfig {
  const r = methodConfigSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(`${source}: invalid model config at '${issue.path.join('.')}': ${issue.message}`);
  }
  return r.data;
}
