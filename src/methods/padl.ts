// `padl` — PADL (Liao et al., "Modeling annotator preference and stochastic annotation error for medical
// image segmentation", arXiv 2021 / Medical Image Analysis 2024), compactly: on the shared backbone, a
// stochastic-error module (SEM) predicts the meta segmentation as Gaussian logits (mean μ₀, variance σ₀²),
// and one human-preference module (HPM) per annotator predicts that annotator's segmentation as Gaussian
// logits (μ_m, σ_m²). Each is trained by the Monte-Carlo likelihood of its target under logits sampled
// with the reparameterisation trick, so σ² absorbs the annotator's stochastic error while μ keeps the
// systematic preference. At inference the means are the predictions: sigmoid(μ₀) is the calibrated map,
// sigmoid(μ_m) annotator m's.
// Departures (docs/methods.md): the meta segmentation's target is the mean vote; the heads are the
// project's small segmentation heads; a soft Dice term on sigmoid(μ) joins each likelihood.
import { UnetBackbone } from '../models/backbone';
import { SegmentationHead } from '../models/heads/segmentation';
import { F, Generator, Tensor, nn, noGrad, randn, stack, tidy } from '../torch';
import { sampledLikelihoodLoss, softDiceLoss } from './losses';
import { Rng } from '../util/random';
import { z } from 'zod';
import { availableRows, pickRows } from './annotators';
import { BaselineConfig, BaselineMethod, baselineConfig, baselineSchema, singleStage } from './baseline';
import { MethodDescriptor } from './descriptor';
import { Prediction, TrainingBatch } from './method';

export interface PadlConfig extends BaselineConfig {
  /** Monte-Carlo samples of the logits per pixel in the likelihood. */
  samples: number;
}

/** Log-variances are kept in a range where exp() neither vanishes nor explodes. */
const LOG_VARIANCE_RANGE = [-10, 5] as const;

export interface GaussianLogits {
  mean: Tensor;
  logVar: Tensor;
}

export interface PadlOutput {
  /** Meta segmentation [B, K, H, W]. */
  meta: GaussianLogits;
  /** Per annotator [B, M, K, H, W]. */
  annotators: GaussianLogits;
}

export class PadlNet extends nn.Module {
  readonly backbone: UnetBackbone;
  readonly stochasticError: SegmentationHead;
  readonly preferences: nn.ModuleList<SegmentationHead>;

  constructor(readonly config: BaselineConfig) {
    super();
    const C = config.backbone.featureChannels;
    const K = config.structures.length;
    this.backbone = this.registerModule('backbone', new UnetBackbone(config.backbone));
    this.stochasticError = this.registerModule('sem', new SegmentationHead(C, 2 * K));
    this.preferences = this.registerModule('hpm', new nn.ModuleList(config.annotators.map(() => new SegmentationHead(C, 2 * K))));
  }

  /**
   * The means of the meta segmentation (μ₀) and of every annotator's preference (μ_m) — each head's
   * first K outputs — start at the structures' training foreground frequencies. The log-variances
   * after them keep their initialisation: they are not foreground logits, and the prior says nothing
   * about how noisy an annotation is.
   */
  initializePrior(foregroundFrequencies: number[]): void {
    const K = this.config.structures.length;
    this.stochasticError.initializePrior(foregroundFrequencies, K);
    for (const head of this.preferences.items) head.initializePrior(foregroundFrequencies, K);
  }

  forward(x: Tensor): PadlOutput {
    return tidy(() => {
      const features = this.backbone.forward(x);
      const K = this.config.structures.length;
      const gaussian = (out: Tensor, dim: number): GaussianLogits => ({
        mean: out.narrow(dim, 0, K),
        logVar: out.narrow(dim, K, K).clamp(...LOG_VARIANCE_RANGE),
      });
      return {
        meta: gaussian(this.stochasticError.forward(features), 1),
        annotators: gaussian(stack(this.preferences.items.map((h) => h.forward(features)), 1), 2),
      };
    });
  }
}

export class PadlMethod extends BaselineMethod<PadlConfig, PadlNet> {
  /** Draws the reparameterisation noise; reseeded from the trainer's per-epoch Rng at every step. */
  private readonly generator = new Generator(0);

  constructor(config: PadlConfig) {
    const model = new PadlNet(config);
    super(config, model, model.backbone.encoder, padl.plan(config));
  }

  loss(batch: TrainingBatch, rng: Rng): Tensor {
    return tidy(() => {
      this.generator.manualSeed(rng.int(2 ** 31));
      const out = this.model.forward(batch.images);
      const term = (g: GaussianLogits, target: Tensor, rows: GlobalRows | null) => {
        const noise = globalNoise(this.config.samples, g.mean.shape, rows, this.generator).to(g.mean.device);
        return sampledLikelihoodLoss(g.mean, g.logVar, target, noise).add(softDiceLoss(F.sigmoid(g.mean), target));
      };
      let loss = term(out.meta, batch.meanVotes, batch.shard ? { first: batch.shard.first, total: batch.shard.global } : null);
      const rows = availableRows(batch, this.config.annotators.length);
      if (rows) {
        const picked = { mean: pickRows(out.annotators.mean, rows), logVar: pickRows(out.annotators.logVar, rows) };
        loss = loss.add(term(picked, pickRows(batch.annotatorMasks, rows), availableGlobalRows(batch)));
      }
      return loss;
    });
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const out = this.model.forward(images);
      return { calibrated: F.sigmoid(out.meta.mean), annotators: F.sigmoid(out.annotators.mean) };
    }));
  }
}

export const padl: MethodDescriptor<PadlConfig> = {
  name: 'padl',
  label: 'PADL',
  description: 'PADL: meta segmentation + per-annotator preference heads with Gaussian stochastic error (Liao et al.)',
  schema: baselineSchema('padl', { samples: z.number().int().positive() }),
  options: [{ key: 'samples', flag: '--likelihood-samples', description: "PADL: Monte-Carlo samples of the logits in each pixel's likelihood", value: { type: 'int', min: 1, max: 1024 }, default: 8 }],
  configure: (context, options) => baselineConfig('padl', context, { samples: options.samples as number }),
  plan: (config) => singleStage(config, 'mean_of_mean_voting_and_average'),
  build: (config) => new PadlMethod(config),
};

/** Where this rank's rows sit among the global batch's rows: the first one's index and their total. */
interface GlobalRows { first: number; total: number }

/** The annotator term's rows (images × available annotators) of a sharded batch within the global batch's. */
function availableGlobalRows(batch: TrainingBatch): GlobalRows | null {
  if (!batch.shard) return null;
  const M = batch.shard.globalAvailable.length / batch.shard.global;
  let first = 0;
  let total = 0;
  batch.shard.globalAvailable.forEach((a, i) => {
    if (!a) return;
    total++;
    if (i < batch.shard!.first * M) first++;
  });
  return { first, total };
}

/**
 * The reparameterisation noise [samples, rows, ...]: drawn for the global batch's rows and narrowed to
 * this rank's when sharded, so every rank uses the numbers one process would.
 */
function globalNoise(samples: number, shape: number[], rows: GlobalRows | null, generator: Generator): Tensor {
  if (!rows) return randn([samples, ...shape], { generator });
  const [local, ...rest] = shape;
  return randn([samples, rows.total, ...rest], { generator }).narrow(1, rows.first, local);
}
