// `mv-unet` — MV-UNet of the paper's Table II: a Res-U-Net trained on the mean vote of the available
// annotators as a soft target, so its sigmoid output approximates the fraction of annotators marking a pixel.
import { Tensor, tidy } from '../torch';
import { segmentationLoss } from './losses';
import { BaselineConfig, SingleMapMethod, baselineConfig, baselineSchema, singleStage } from './baseline';
import { MethodDescriptor } from './descriptor';
import { TrainingBatch } from './method';

export class MeanVoteMethod extends SingleMapMethod<BaselineConfig> {
  constructor(config: BaselineConfig) {
    super(config, mvUnet.plan(config));
  }

  loss(batch: TrainingBatch): Tensor {
    return tidy(() => segmentationLoss(this.model.forward(batch.images), batch.meanVotes));
  }
}

export const mvUnet: MethodDescriptor<BaselineConfig> = {
  name: 'mv-unet',
  label: 'MV-UNet',
  description: 'MV-UNet: Res-U-Net trained on the mean vote (soft target)',
  schema: baselineSchema('mv-unet', {}),
  configure: (context) => baselineConfig('mv-unet', context),
  plan: (config) => singleStage(config, 'mean_voting'),
  build: (config) => new MeanVoteMethod(config),
};
