// `ls-unet` — LS-UNet, label sampling (Jensen et al., MICCAI 2019): every iteration, each image's target
// is the mask of one of its annotators drawn at random, so over training the network sees the
// annotators' disagreement and its sigmoid output calibrates to it.
import { Tensor, tidy } from '../torch';
import { segmentationLoss } from './losses';
import { Rng } from '../util/random';
import { chosenRows, pickAnnotators, pickRows } from './annotators';
import { BaselineConfig, SingleMapMethod, baselineConfig, baselineSchema, singleStage } from './baseline';
import { MethodDescriptor } from './descriptor';
import { TrainingBatch } from './method';

export class LabelSamplingMethod extends SingleMapMethod<BaselineConfig> {
  constructor(config: BaselineConfig) {
    super(config, lsUnet.plan(config));
  }

  loss(batch: TrainingBatch, rng: Rng): Tensor {
    return tidy(() => {
      const M = this.config.annotators.length;
      const rows = chosenRows(pickAnnotators(batch, M, rng), M);
      return segmentationLoss(this.model.forward(batch.images), pickRows(batch.annotatorMasks, rows));
    });
  }
}

export const lsUnet: MethodDescriptor<BaselineConfig> = {
  name: 'ls-unet',
  label: 'LS-UNet',
  description: "LS-UNet: label sampling, a random annotator's mask per image and iteration (Jensen et al. 2019)",
  schema: baselineSchema('ls-unet', {}),
  configure: (context) => baselineConfig('ls-unet', context),
  plan: (config) => singleStage(config, 'mean_voting'),
  build: (config) => new LabelSamplingMethod(config),
};
