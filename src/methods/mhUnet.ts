// `mh-unet` — MH-UNet of the paper's Table II (after Guan et al., AAAI 2018, "Who said what"): the shared
// Res-U-Net backbone with one segmentation head per annotator, each trained on its annotator's masks.
// Its calibrated map is the mean of the heads. Parameters and inference cost grow with M, which is
// what AVAP's dynamic head avoids (bench/avap.ts measures both).
import { UnetBackbone } from '../models/backbone';
import { SegmentationHead } from '../models/heads/segmentation';
import { F, Tensor, nn, noGrad, stack, tidy } from '../torch';
import { segmentationLoss } from './losses';
import { availableRows, pickRows, zeroLoss } from './annotators';
import { BaselineConfig, BaselineMethod, baselineConfig, baselineSchema, singleStage } from './baseline';
import { MethodDescriptor } from './descriptor';
import { Prediction, TrainingBatch } from './method';

export class MultiHeadUnet extends nn.Module {
  readonly backbone: UnetBackbone;
  readonly heads: nn.ModuleList<SegmentationHead>;

  constructor(readonly config: BaselineConfig) {
    super();
    const C = config.backbone.featureChannels;
    const K = config.structures.length;
    this.backbone = this.registerModule('backbone', new UnetBackbone(config.backbone));
    this.heads = this.registerModule('heads', new nn.ModuleList(config.annotators.map(() => new SegmentationHead(C, K))));
  }

  /** Every annotator's head starts at the structures' training foreground frequencies. */
  initializePrior(foregroundFrequencies: number[]): void {
    for (const head of this.heads.items) head.initializePrior(foregroundFrequencies);
  }

  /** Logits [B, M, K, H, W], one head per annotator on one backbone pass. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const features = this.backbone.forward(x);
      return stack(this.heads.items.map((h) => h.forward(features)), 1);
    });
  }
}

export class MultiHeadMethod extends BaselineMethod<BaselineConfig, MultiHeadUnet> {
  constructor(config: BaselineConfig) {
    const model = new MultiHeadUnet(config);
    super(config, model, model.backbone.encoder, mhUnet.plan(config));
  }

  loss(batch: TrainingBatch): Tensor {
    return tidy(() => {
      const logits = this.model.forward(batch.images);
      // Every (image, annotator) pair with an annotation trains that annotator's head.
      const rows = availableRows(batch, this.config.annotators.length);
      if (!rows) return zeroLoss(logits);
      return segmentationLoss(pickRows(logits, rows), pickRows(batch.annotatorMasks, rows));
    });
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const annotators = F.sigmoid(this.model.forward(images));
      return { calibrated: annotators.mean(1), annotators };
    }));
  }
}

export const mhUnet: MethodDescriptor<BaselineConfig> = {
  name: 'mh-unet',
  label: 'MH-UNet',
  description: 'MH-UNet: Res-U-Net with one segmentation head per annotator',
  schema: baselineSchema('mh-unet', {}),
  configure: (context) => baselineConfig('mh-unet', context),
  plan: (config) => singleStage(config, 'mean_of_mean_voting_and_average'),
  build: (config) => new MultiHeadMethod(config),
};
