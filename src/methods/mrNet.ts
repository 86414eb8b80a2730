// `mr-net` — MR-Net (Ji et al., CVPR 2021, "Learning calibrated medical image segmentation via
// multi-rater agreement modeling"), compactly:
//   1. Expertise-aware inference: a rater-expertise vector v (weights over the M raters, summing to 1)
//      conditions the features; the coarse prediction's target is the v-weighted fusion Σ v_m y_m.
//      Training draws v at random (over the raters who annotated the image); inference uses the
//      uniform vector, whose target is the mean vote, i.e. the calibrated map.
//   2. Multi-rater reconstruction: from the conditioned features and the coarse prediction, one map
//      per rater reconstructs that rater's own annotation; their spread is the inter-rater
//      (dis)agreement, an uncertainty map U.
//   3. Agreement-aware refinement: the features, the coarse prediction and U give a residual
//      correction of the coarse prediction — the final calibrated map.
// Departures (docs/methods.md): v conditions F_img by a learned channel-wise scale and shift rather than
// being fused into the encoder's deepest features, and each module is one small conv head.
import { UnetBackbone } from '../models/backbone';
import { SegmentationHead } from '../models/heads/segmentation';
import { F, Tensor, cat, nn, noGrad, tensor, tidy } from '../torch';
import { segmentationLoss } from './losses';
import { Rng } from '../util/random';
import { availableRows, pickRows } from './annotators';
import { BaselineConfig, BaselineMethod, baselineConfig, baselineSchema, singleStage } from './baseline';
import { MethodDescriptor } from './descriptor';
import { Prediction, TrainingBatch, drawingBatch } from './method';
import { AnnotatorLayout } from '../data/layout';

export interface MultiRaterOutput {
  /** Coarse and refined calibrated logits [B, K, H, W] for the given expertise vectors. */
  coarse: Tensor;
  refined: Tensor;
  /** Reconstructed rater logits [B, M, K, H, W]. */
  raters: Tensor;
}

export class MultiRaterNet extends nn.Module {
  readonly backbone: UnetBackbone;
  /** v → per-channel scale and shift of F_img. */
  readonly expertise: nn.Linear;
  readonly coarseHead: SegmentationHead;
  readonly reconstruction: SegmentationHead;
  readonly refinement: SegmentationHead;

  constructor(readonly config: BaselineConfig) {
    super();
    const C = config.backbone.featureChannels;
    const M = config.annotators.length;
    const K = config.structures.length;
    this.backbone = this.registerModule('backbone', new UnetBackbone(config.backbone));
    this.expertise = this.registerModule('expertise', new nn.Linear(M, 2 * C));
    this.coarseHead = this.registerModule('coarse', new SegmentationHead(C, K));
    this.reconstruction = this.registerModule('reconstruction', new SegmentationHead(C + K, M * K, C));
    this.refinement = this.registerModule('refinement', new SegmentationHead(C + 2 * K, K, C));
  }

  /**
   * The coarse map and every rater's reconstruction (an [M, K] layout, structure-fastest) start at the
   * structures' training foreground frequencies. The refinement's output is not a map of its own but a
   * residual added to the coarse logits: giving it the prior too would count it twice, so its bias
   * starts at zero instead and the refined map starts at the prior as well.
   */
  initializePrior(foregroundFrequencies: number[]): void {
    this.coarseHead.initializePrior(foregroundFrequencies);
    this.reconstruction.initializePrior(foregroundFrequencies);
    noGrad(() => void this.refinement.classifier.bias!.zero_());
  }

  /** expertise: [B, M] rater weights (rows sum to 1). */
  forward(x: Tensor, expertise: Tensor): MultiRaterOutput {
    return tidy(() => {
      const features = this.backbone.forward(x);
      const [B, C, H, W] = features.shape;
      const M = this.config.annotators.length;
      const K = this.config.structures.length;
      const film = this.expertise.forward(expertise).view([B, 2 * C, 1, 1]);
      const conditioned = features.mul(film.narrow(1, 0, C).tanh().add(1)).add(film.narrow(1, C, C));
      const coarse = this.coarseHead.forward(conditioned);
      const coarseProb = F.sigmoid(coarse);
      const raters = this.reconstruction.forward(cat([conditioned, coarseProb], 1)).view([B, M, K, H, W]);
      // Disagreement among the reconstructed raters; detached so the refinement reads it without
      // pulling the reconstructions away from the raters.
      const uncertainty = F.sigmoid(raters).detach().var(1, false);
      const refined = coarse.add(this.refinement.forward(cat([conditioned, coarseProb, uncertainty], 1)));
      return { coarse, refined, raters };
    });
  }
}

export class MultiRaterMethod extends BaselineMethod<BaselineConfig, MultiRaterNet> {
  constructor(config: BaselineConfig) {
    const model = new MultiRaterNet(config);
    super(config, model, model.backbone.encoder, mrNet.plan(config));
  }

  loss(batch: TrainingBatch, rng: Rng): Tensor {
    return tidy(() => {
      const M = this.config.annotators.length;
      const weights = randomExpertise(batch, M, rng);
      const v = tensor(weights, [batch.size, M]).to(batch.images.device);
      const out = this.model.forward(batch.images, v);
      const fused = batch.annotatorMasks.mul(v.view([batch.size, M, 1, 1, 1])).sum(1); // Σ_m v_m y_m: [B, K, S, S]
      let loss = segmentationLoss(out.coarse, fused).add(segmentationLoss(out.refined, fused));
      const rows = availableRows(batch, M);
      if (rows) loss = loss.add(segmentationLoss(pickRows(out.raters, rows), pickRows(batch.annotatorMasks, rows)));
      return loss;
    });
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const B = images.shape[0];
      const M = this.config.annotators.length;
      const uniform = tensor(new Float32Array(B * M).fill(1 / M), [B, M]).to(images.device);
      const out = this.model.forward(images, uniform);
      return { calibrated: F.sigmoid(out.refined), annotators: F.sigmoid(out.raters) };
    }));
  }
}

/**
 * Random expertise vectors, uniform on the simplex over each image's available raters (a flat
 * Dirichlet: normalised exponential draws), row-major [B, M].
 */
export function randomExpertise(batch: TrainingBatch, annotators: number, rng: Rng): Float32Array {
  const all = drawingBatch(batch);
  const v = new Float32Array(all.size * annotators);
  const layout = new AnnotatorLayout(annotators, 1);
  for (let b = 0; b < all.size; b++) {
    let total = 0;
    for (let m = 0; m < annotators; m++) {
      const i = layout.slot(b, m);
      v[i] = all.available[i] ? -Math.log(1 - rng.next()) : 0;
      total += v[i];
    }
    for (let m = 0; m < annotators; m++) v[layout.slot(b, m)] = total > 0 ? v[layout.slot(b, m)] / total : 1 / annotators;
  }
  return batch.shard ? v.slice(layout.slot(batch.shard.first, 0), layout.slot(batch.shard.first + batch.size, 0)) : v;
}

export const mrNet: MethodDescriptor<BaselineConfig> = {
  name: 'mr-net',
  label: 'MR-Net',
  description: 'MR-Net: expertise-aware inference, multi-rater reconstruction, agreement-aware refinement (Ji et al. 2021)',
  schema: baselineSchema('mr-net', {}),
  configure: (context) => baselineConfig('mr-net', context),
  plan: (config) => singleStage(config, 'mean_of_mean_voting_and_average'),
  build: (config) => new MultiRaterMethod(config),
};
