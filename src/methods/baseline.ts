// What the paper's comparison methods (Table II) share: the config fields every one of them has, one
// training stage on the whole model, and the predict of a method with one output map.
import { z } from 'zod';
import { TrainingStatistics, foregroundFrequencies } from '../data/statistics';
import { BackboneConfig, DEFAULT_BACKBONE } from '../models/backbone';
import { Encoder } from '../models/encoders/encoder';
import { SegmentationUnet } from '../models/unet';
import { F, Tensor, nn, noGrad, tidy } from '../torch';
import { Rng } from '../util/random';
import { broadcastToAnnotators } from './annotators';
import { MethodContext } from './descriptor';
import { Method, MethodConfig, Prediction, SelectionScore, Stage, StagePlan, TrainingBatch } from './method';

/** Config fields common to every baseline (AVAP's config has two steps and a shape of its own). */
export interface BaselineConfig extends MethodConfig {
  backbone: BackboneConfig;
  /** Baselines train in one stage of `steps` optimiser steps. */
  training: { steps: number };
}

export const backboneSchema = z.object({ encoder: z.string(), inChannels: z.number().int().positive(), featureChannels: z.number().int().positive() });

/** The schema of a baseline's config: the common fields plus the method's own. */
export function baselineSchema<T extends z.ZodRawShape>(method: string, own: T) {
  return z.object({
    method: z.literal(method),
    structures: z.array(z.string()).min(1),
    annotators: z.array(z.string()).min(1),
    backbone: backboneSchema,
    training: z.object({ steps: z.number().int().nonnegative() }),
    ...own,
  });
}

export function backboneFor(context: MethodContext): BackboneConfig {
  return { encoder: context.encoder ?? DEFAULT_BACKBONE.encoder, inChannels: context.inChannels, featureChannels: context.featureChannels ?? DEFAULT_BACKBONE.featureChannels };
}

/** A baseline's config: its name, its own fields, then the common ones (config.json's order). */
export function baselineConfig<T extends object>(method: string, context: MethodContext, own: T = {} as T): BaselineConfig & T {
  return { method, ...own, structures: context.structures, annotators: context.annotators, backbone: backboneFor(context), training: { steps: context.steps } };
}

/** One stage training the whole model; with enough validation cases, `select` picks its best weights. */
export function singleStage(config: BaselineConfig, select: SelectionScore): StagePlan[] {
  return [{ name: 'train', steps: config.training.steps, select }];
}

/**
 * A baseline's model knows its own output layout, so it decides which outputs are sigmoid segmentation
 * logits that start at the training set's foreground frequencies (SegmentationHead.initializePrior)
 * and which keep their initialisation.
 */
export interface ForegroundPriorModel {
  /** Per structure, the training pixels' foreground frequency p_s in (0, 1). */
  initializePrior(foregroundFrequencies: number[]): void;
}

/**
 * A baseline trains its whole model in the one stage its descriptor plans, with `loss`. Before a new
 * run's first step its sigmoid segmentation outputs start at logit(p_s), the same generic help AVAP's
 * agreement classifier gets from the same statistics, so no method spends its first steps learning
 * that almost no pixel is foreground.
 */
export abstract class BaselineMethod<C extends BaselineConfig, M extends nn.Module & ForegroundPriorModel> implements Method {
  constructor(readonly config: C, readonly model: M, readonly encoder: Encoder | null, private readonly plan: StagePlan[]) {}

  get name(): string {
    return this.config.method;
  }

  stages(): Stage[] {
    return this.plan.map((p) => ({ ...p, trained: [this.model], frozen: [], loss: (batch, rng) => this.loss(batch, rng) }));
  }

  initialize(statistics: TrainingStatistics): void {
    this.model.initializePrior(foregroundFrequencies(statistics));
  }

  abstract loss(batch: TrainingBatch, rng: Rng): Tensor;
  abstract predict(images: Tensor): Prediction;
}

/** A Res-U-Net with one sigmoid map per structure, which stands for every annotator when scored (M_K, MV-UNet, LS-UNet). */
export abstract class SingleMapMethod<C extends BaselineConfig> extends BaselineMethod<C, SegmentationUnet> {
  constructor(config: C, plan: StagePlan[]) {
    const model = new SegmentationUnet(config.backbone, config.structures.length);
    super(config, model, model.backbone.encoder, plan);
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const calibrated = F.sigmoid(this.model.forward(images));
      return { calibrated, annotators: broadcastToAnnotators(calibrated, this.config.annotators.length) };
    }));
  }
}
