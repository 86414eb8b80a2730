// `single:K` — the paper's M_K (Table II, M1–M6): a Res-U-Net trained on annotator K's masks alone.
// Its one map stands for every annotator when scored, as in the paper's table.
import { z } from 'zod';
import { UserError } from '../errors';
import { Tensor, tensor, tidy } from '../torch';
import { segmentationLoss } from './losses';
import { availableRows, pickRows, zeroLoss } from './annotators';
import { BaselineConfig, SingleMapMethod, baselineConfig, baselineSchema, singleStage } from './baseline';
import { MethodDescriptor } from './descriptor';
import { TrainingBatch } from './method';
import { AnnotatorLayout } from '../data/layout';

export interface SingleAnnotatorConfig extends BaselineConfig {
  /** 1-based annotator whose masks are the training target. */
  annotator: number;
}

export class SingleAnnotatorMethod extends SingleMapMethod<SingleAnnotatorConfig> {
  constructor(config: SingleAnnotatorConfig) {
    super(config, single.plan(config));
  }

  override get name(): string {
    return `single:${this.config.annotator}`;
  }

  loss(batch: TrainingBatch): Tensor {
    return tidy(() => {
      const M = this.config.annotators.length;
      const logits = this.model.forward(batch.images);
      // Images without annotator K's annotation teach nothing here.
      const k = this.config.annotator - 1;
      const rows = availableRows(batch, M, k);
      if (!rows) return zeroLoss(logits);
      const images = BigInt64Array.from({ length: batch.size }, (_, b) => BigInt(b)).filter((b) => batch.available[new AnnotatorLayout(M, 1).slot(Number(b), k)]);
      return segmentationLoss(logits.indexSelect(0, tensor(images, [images.length]).to(logits.device)), pickRows(batch.annotatorMasks, rows));
    });
  }
}

export const single: MethodDescriptor<SingleAnnotatorConfig> = {
  name: 'single',
  label: 'M_K',
  description: "M_K: Res-U-Net trained on annotator K's masks only (K = 1..M, the paper's M1–M6)",
  schema: baselineSchema('single', { annotator: z.number().int().positive() }).superRefine((c, ctx) => {
    if (c.annotator > c.annotators.length) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['annotator'], message: `annotator ${c.annotator} does not exist (the config lists ${c.annotators.length})` });
    }
  }),
  variants: {
    usage: 'single:K',
    expand: (annotators) => Array.from({ length: annotators }, (_, k) => `single:${k + 1}`),
    parse(arg, id, annotators, flag) {
      const range = annotators !== undefined ? `1..${annotators}` : '1..M';
      if (arg === null || !/^\d+$/.test(arg)) throw new UserError(`${flag}: '${id}' is not a method; use single:K with K an annotator number (${range})`);
      const k = Number(arg);
      if (k < 1 || (annotators !== undefined && k > annotators)) throw new UserError(`${flag} ${id}: annotator ${k} does not exist (the dataset has annotators ${range})`);
      return { annotator: k };
    },
    label: (config) => `M${config.annotator}`,
    id: (config) => `single:${config.annotator}`,
  },
  configure: (context, options) => baselineConfig('single', context, { annotator: options.annotator as number }),
  // Validation picks the epoch by 'average' (the map against every annotator), the closest of the
  // trainer's scores to M_K's own target; see docs/methods.md.
  plan: (config) => singleStage(config, 'average'),
  build: (config) => new SingleAnnotatorMethod(config),
};
