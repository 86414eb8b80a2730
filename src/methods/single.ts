// `single:K` — the paper's M_K (Table II, M1–M6): a Res-U-Net trained on annotator K's masks alone.
// Its one map stands for every annotator when scored, as in the paper's table.
import { SegmentationUnet } from '../models/unet';
import { F, Tensor, noGrad, tensor, tidy } from '../torch';
import { segmentationLoss } from '../train/losses';
import { BaselineConfig, availableRows, broadcastToAnnotators, pickRows, singleStage, zeroLoss } from './baseline';
import { Method, Prediction, Stage, TrainingBatch } from './method';

export interface SingleAnnotatorConfig extends BaselineConfig {
  /** 1-based annotator whose masks are the training target. */
  annotator: number;
}

export class SingleAnnotatorMethod implements Method {
  readonly name: string;
  readonly model: SegmentationUnet;

  constructor(readonly config: SingleAnnotatorConfig) {
    this.name = `single:${config.annotator}`;
    this.model = new SegmentationUnet(config.backbone, config.structures.length);
  }

  stages(): Stage[] {
    // Validation picks the epoch by 'average' (the map against every annotator), the closest of the
    // trainer's scores to M_K's own target; see docs/methods.md.
    return singleStage(this.model, this.config.training.epochs, 'average');
  }

  loss(_stage: Stage, batch: TrainingBatch): Tensor {
    return tidy(() => {
      const M = this.config.annotators.length;
      const logits = this.model.forward(batch.images);
      // Images without annotator K's annotation teach nothing here.
      const k = this.config.annotator - 1;
      const rows = availableRows(batch, M, k);
      if (!rows) return zeroLoss(logits);
      const images = BigInt64Array.from({ length: batch.size }, (_, b) => BigInt(b)).filter((b) => batch.available[Number(b) * M + k]);
      return segmentationLoss(logits.indexSelect(0, tensor(images, [images.length])), pickRows(batch.annotatorMasks, rows));
    });
  }

  predict(images: Tensor): Prediction {
    return noGrad(() => tidy(() => {
      const mean = F.sigmoid(this.model.forward(images));
      return { mean, annotators: broadcastToAnnotators(mean, this.config.annotators.length) };
    }));
  }
}
