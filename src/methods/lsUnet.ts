// `ls-unet` — LS-UNet, label sampling (Jensen et al., MICCAI 2019): every iteration, each image's target
// is the mask of one of its annotators drawn at random, so over training the network sees the
// annotators' disagreement and its sigmoid output calibrates to it.
import { SegmentationUnet } from '../models/unet';
import { F, Tensor, noGrad, tensor, tidy } from '../torch';
import { segmentationLoss } from '../train/losses';
import { Rng } from '../util/random';
import { pickAnnotators } from './avap';
import { BaselineConfig, broadcastToAnnotators, pickRows, singleStage } from './baseline';
import { Method, Prediction, Stage, TrainingBatch } from './method';

export class LabelSamplingMethod implements Method {
  readonly name = 'ls-unet';
  readonly model: SegmentationUnet;

  constructor(readonly config: BaselineConfig) {
    this.model = new SegmentationUnet(config.backbone, config.structures.length);
  }

  stages(): Stage[] {
    return singleStage(this.model, this.config.training.epochs, 'mean_voting');
  }

  loss(_stage: Stage, batch: TrainingBatch, rng: Rng): Tensor {
    return tidy(() => {
      const M = this.config.annotators.length;
      const chosen = pickAnnotators(batch, M, rng);
      const rows = tensor(BigInt64Array.from(chosen, (m, b) => BigInt(b * M + m)), [batch.size]);
      return segmentationLoss(this.model.forward(batch.images), pickRows(batch.annotatorMasks, rows));
    });
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const mean = F.sigmoid(this.model.forward(images));
      return { mean, annotators: broadcastToAnnotators(mean, this.config.annotators.length) };
    }));
  }
}
