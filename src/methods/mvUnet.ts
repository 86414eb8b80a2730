// `mv-unet` — MV-UNet of the paper's Table II: a Res-U-Net trained on the mean vote of the available
// annotators as a soft target, so its sigmoid output approximates the fraction of annotators marking a pixel.
import { SegmentationUnet } from '../models/unet';
import { F, Tensor, noGrad, tidy } from '../torch';
import { segmentationLoss } from '../train/losses';
import { BaselineConfig, broadcastToAnnotators, singleStage } from './baseline';
import { Method, Prediction, Stage, TrainingBatch } from './method';

export class MeanVoteMethod implements Method {
  readonly name = 'mv-unet';
  readonly model: SegmentationUnet;

  constructor(readonly config: BaselineConfig) {
    this.model = new SegmentationUnet(config.backbone, config.structures.length);
  }

  stages(): Stage[] {
    return singleStage(this.model, this.config.training.epochs, 'mean_voting');
  }

  loss(_stage: Stage, batch: TrainingBatch): Tensor {
    return tidy(() => segmentationLoss(this.model.forward(batch.images), batch.meanVotes));
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const mean = F.sigmoid(this.model.forward(images));
      return { mean, annotators: broadcastToAnnotators(mean, this.config.annotators.length) };
    }));
  }
}
