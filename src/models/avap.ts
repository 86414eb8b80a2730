// AVAP (Fig. 2): a Res-U-Net backbone, the annotator-variation head (AVM) and the annotator-preference
// head (APM) sharing the backbone's features F_img.
import { Tensor, nn, noGrad, tidy, F } from '../torch';
import { BackboneConfig, UnetBackbone } from './backbone';
import { Conditioning, DynamicHead } from './heads/preference';
import { Calibration, VariationHead } from './heads/variation';

export interface AvapConfig {
  structures: string[];
  annotators: string[];
  backbone: BackboneConfig;
  avm: { hidden: number; calibration: Calibration };
  apm: { hidden: number; conditioning: Conditioning };
}

export interface AvapOutput {
  /** Per structure, agreement-class logits [B, M+1, H, W]. */
  variation: Tensor[];
  /** Preference logits [B, A, K, H, W] for the requested annotators, when any were requested. */
  preference: Tensor | null;
}

export class AVAP extends nn.Module {
  readonly backbone: UnetBackbone;
  readonly avm: VariationHead;
  readonly apm: DynamicHead;

  constructor(readonly config: AvapConfig) {
    super();
    const M = config.annotators.length;
    const K = config.structures.length;
    this.backbone = this.registerModule('backbone', new UnetBackbone(config.backbone));
    const C = config.backbone.featureChannels;
    this.avm = this.registerModule('avm', new VariationHead(C, K, M, config.avm.hidden));
    this.apm = this.registerModule('apm', new DynamicHead({ inChannels: C, annotators: M, structures: K, hidden: config.apm.hidden, conditioning: config.apm.conditioning }));
  }

  get annotatorCount(): number {
    return this.config.annotators.length;
  }

  /** annotators: per image, the 0-based annotators whose preference to predict (omit for AVM only). */
  forward(x: Tensor, annotators?: number[][]): AvapOutput {
    return tidy(() => {
      const features = this.backbone.forward(x);
      return {
        variation: this.avm.forward(features),
        preference: annotators ? this.apm.forward(features, annotators) : null,
      };
    });
  }

  /**
   * Inference: the calibrated map [B, K, H, W] and every annotator's probability map [B, M, K, H, W]
   * from one backbone pass (eval mode, no autograd).
   */
  predict(x: Tensor, calibration: Calibration = this.config.avm.calibration): { calibrated: Tensor; annotators: Tensor } {
    return noGrad(() => tidy(() => {
      const out = this.forward(x, this.allAnnotators(x.shape[0]));
      return { calibrated: this.avm.calibrated(out.variation, calibration), annotators: F.sigmoid(out.preference!) };
    }));
  }

  /** One pass, both calibration rules: for choosing the rule on validation data. */
  predictBothCalibrations(x: Tensor): { expectation: Tensor; argmax: Tensor; annotators: Tensor } {
    return noGrad(() => tidy(() => {
      const out = this.forward(x, this.allAnnotators(x.shape[0]));
      return {
        expectation: this.avm.calibrated(out.variation, 'expectation'),
        argmax: this.avm.calibrated(out.variation, 'argmax'),
        annotators: F.sigmoid(out.preference!),
      };
    }));
  }

  private allAnnotators(batch: number): number[][] {
    return Array.from({ length: batch }, () => Array.from({ length: this.annotatorCount }, (_, k) => k));
  }
}
