// `cm-net` — CM-Net (Zhang et al., NeurIPS 2020, "Disentangling human error from the ground truth in
// segmentation of medical images"): a segmentation head estimates the clean ("true") segmentation p(x),
// and an annotator head estimates, per pixel and annotator r, a confusion matrix A_r(x) with
// A_r[i, j] = p(annotator says i | true class j). Annotator r's prediction is A_r·p, trained against r's
// masks; a trace regulariser pushes the matrices to be as unreliable as the data allows, so that the
// clean map, not the matrices, explains what the annotators agree on.
// Here every structure is its own 2-class problem (structures overlap, disc ⊃ cup), so A_r is 2×2 per
// pixel, annotator and structure.
import { UnetBackbone } from '../models/backbone';
import { SegmentationHead } from '../models/heads/segmentation';
import { F, Tensor, nn, noGrad, tensor, tidy } from '../torch';
import { probabilityLoss } from './losses';
import { z } from 'zod';
import { availableRows, pickRows, zeroLoss } from './annotators';
import { BaselineConfig, BaselineMethod, baselineConfig, baselineSchema, singleStage } from './baseline';
import { MethodDescriptor } from './descriptor';
import { Prediction, TrainingBatch } from './method';

export interface ConfusionMatrixConfig extends BaselineConfig {
  /** λ of the trace regulariser (the authors' code: 0.1). */
  traceWeight: number;
}

/** Prior logit gap between a matrix's diagonal and off-diagonal entries at initialisation. */
const IDENTITY_PRIOR = 2;

export interface ConfusionOutput {
  /** Clean segmentation probabilities [B, K, H, W]. */
  clean: Tensor;
  /** Confusion matrices [B, M, K, 2 (annotated), 2 (true), H, W]; each column sums to 1. */
  matrices: Tensor;
  /** Annotator foreground probabilities A_r·p: [B, M, K, H, W]. */
  annotators: Tensor;
}

export class ConfusionMatrixNet extends nn.Module {
  readonly backbone: UnetBackbone;
  readonly segmentation: SegmentationHead;
  readonly confusion: SegmentationHead;

  constructor(readonly config: BaselineConfig) {
    super();
    const C = config.backbone.featureChannels;
    const M = config.annotators.length;
    const K = config.structures.length;
    this.backbone = this.registerModule('backbone', new UnetBackbone(config.backbone));
    this.segmentation = this.registerModule('segmentation', new SegmentationHead(C, K));
    this.confusion = this.registerModule('confusion', new SegmentationHead(C, M * K * 4));
    // Start near "every annotator is reliable" (diagonal ≈ 0.88), so the clean map learns the
    // segmentation first and the matrices then absorb each annotator's systematic deviations.
    const bias = new Float32Array(M * K * 4).map((_, i) => ((i >> 1) & 1) === (i & 1) ? IDENTITY_PRIOR / 2 : -IDENTITY_PRIOR / 2);
    noGrad(() => tidy(() => void this.confusion.classifier.bias!.copy_(tensor(bias))));
  }

  /**
   * The clean segmentation's sigmoid starts at the structures' training foreground frequencies. The
   * confusion head keeps its identity prior: its outputs are logits of a softmax over the annotated
   * class given the true class, not foreground logits, so the foreground frequency says nothing about them.
   */
  initializePrior(foregroundFrequencies: number[]): void {
    this.segmentation.initializePrior(foregroundFrequencies);
  }

  forward(x: Tensor): ConfusionOutput {
    return tidy(() => {
      const features = this.backbone.forward(x);
      const [B, , H, W] = features.shape;
      const M = this.config.annotators.length;
      const K = this.config.structures.length;
      const clean = F.sigmoid(this.segmentation.forward(features)).unsqueeze(1); // [B, 1, K, H, W]
      const matrices = F.softmax(this.confusion.forward(features).view([B, M, K, 2, 2, H, W]), 3);
      // p(annotated = 1) = A[1, 0]·p(true = 0) + A[1, 1]·p(true = 1).
      const saysForeground = matrices.select(3, 1); // [B, M, K, 2 (true), H, W]
      const annotators = saysForeground.select(3, 0).mul(clean.rsub(1)).add(saysForeground.select(3, 1).mul(clean));
      return { clean: clean.squeeze(1), matrices, annotators };
    });
  }
}

export class ConfusionMatrixMethod extends BaselineMethod<ConfusionMatrixConfig, ConfusionMatrixNet> {
  constructor(config: ConfusionMatrixConfig) {
    const model = new ConfusionMatrixNet(config);
    super(config, model, model.backbone.encoder, cmNet.plan(config));
  }

  loss(batch: TrainingBatch): Tensor {
    return tidy(() => {
      const out = this.model.forward(batch.images);
      const rows = availableRows(batch, this.config.annotators.length);
      if (!rows) return zeroLoss(out.annotators);
      const fidelity = probabilityLoss(pickRows(out.annotators, rows), pickRows(batch.annotatorMasks, rows));
      // tr(A) = A[0, 0] + A[1, 1], averaged over pixels, structures and annotators.
      const trace = out.matrices.select(3, 0).select(3, 0).add(out.matrices.select(3, 1).select(3, 1)).mean();
      return fidelity.add(trace.mul(this.config.traceWeight));
    });
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const out = this.model.forward(images);
      return { calibrated: out.clean, annotators: out.annotators };
    }));
  }
}

export const cmNet: MethodDescriptor<ConfusionMatrixConfig> = {
  name: 'cm-net',
  label: 'CM-Net',
  description: 'CM-Net: clean segmentation + per-pixel, per-annotator confusion matrices, trace regulariser (Zhang et al. 2020)',
  schema: baselineSchema('cm-net', { traceWeight: z.number().nonnegative() }),
  options: [{ key: 'traceWeight', flag: '--trace-weight', description: "CM-Net: weight λ of the confusion matrices' trace regulariser (the default is the authors' value)", value: { type: 'number', min: 0, max: 100 }, default: 0.1 }],
  configure: (context, options) => baselineConfig('cm-net', context, { traceWeight: options.traceWeight as number }),
  plan: (config) => singleStage(config, 'mean_of_mean_voting_and_average'),
  build: (config) => new ConfusionMatrixMethod(config),
};
