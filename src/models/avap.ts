// AVAP (Fig. 2): a Res-U-Net backbone, the annotator-variation head (AVM) and the annotator-preference
// head (APM) sharing the backbone's features F_img.
import { F, Tensor, cat, nn, noGrad, tensor, tidy } from '../torch';
import { BackboneConfig, UnetBackbone } from './backbone';
import { Conditioning, DynamicHead } from './heads/preference';
import { PreferenceGate } from './heads/preferenceGate';
import { Calibration, VariationHead, expectedAgreement } from './heads/variation';

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
  /**
   * Preference logits [B, A, K, H, W] for the requested annotators, when any were requested: the
   * consensus logit plus the APM's per-annotator departure from it.
   */
  preference: Tensor | null;
}

export class AVAP extends nn.Module {
  readonly backbone: UnetBackbone;
  readonly avm: VariationHead;
  readonly apm: DynamicHead;
  readonly gate: PreferenceGate;

  constructor(readonly config: AvapConfig) {
    super();
    const M = config.annotators.length;
    const K = config.structures.length;
    this.backbone = this.registerModule('backbone', new UnetBackbone(config.backbone));
    const C = config.backbone.featureChannels;
    this.avm = this.registerModule('avm', new VariationHead(C, K, M, config.avm.hidden));
    this.apm = this.registerModule('apm', new DynamicHead({ inChannels: C, annotators: M, structures: K, hidden: config.apm.hidden, conditioning: config.apm.conditioning }));
    this.gate = this.registerModule('gate', new PreferenceGate(M, K));
  }

  get annotatorCount(): number {
    return this.config.annotators.length;
  }

  /** annotators: per image, the 0-based annotators whose preference to predict (omit for AVM only). */
  forward(x: Tensor, annotators?: number[][]): AvapOutput {
    return tidy(() => {
      const { variation, consensus, departures } = this.heads(x, annotators);
      if (!departures || !consensus) return { variation, preference: null };
      return { variation, preference: departures.add(consensus.expand(departures.shape)) };
    });
  }

  /**
   * One backbone pass: the AVM's logits and, when annotators are given (step 1 needs neither), the
   * consensus logit [B, 1, K, H, W] and the APM's departures from it [B, A, K, H, W].
   */
  private heads(x: Tensor, annotators?: number[][]): { variation: Tensor[]; consensus: Tensor | null; departures: Tensor | null } {
    return tidy(() => {
      const features = this.backbone.forward(x);
      const variation = this.avm.forward(features);
      if (!annotators) return { variation, consensus: null, departures: null };
      const consensus = consensusLogits(variation, this.annotatorCount).unsqueeze(1);
      return { variation, consensus, departures: this.apm.forward(features, annotators) };
    });
  }

  /**
   * Inference: the calibrated map [B, K, H, W] and the probability maps [B, A, K, H, W] of `annotators`
   * (0-based; default every one) from one backbone pass (eval mode, no autograd). Each annotator's map
   * goes through the gate, which needs every annotator's departure once it shrinks any of them.
   */
  predict(x: Tensor, calibration: Calibration = this.config.avm.calibration, annotators?: number[]): { calibrated: Tensor; annotators: Tensor } {
    return noGrad(() => tidy(() => {
      const { variation, logits } = this.gatedLogits(x, annotators);
      return { calibrated: this.avm.calibrated(variation, calibration), annotators: F.sigmoid(logits) };
    }));
  }

  /** One pass, both calibration rules: for choosing the rule on validation data. */
  predictBothCalibrations(x: Tensor): { expectation: Tensor; argmax: Tensor; annotators: Tensor } {
    return noGrad(() => tidy(() => {
      const { variation, logits } = this.gatedLogits(x);
      return {
        expectation: this.avm.calibrated(variation, 'expectation'),
        argmax: this.avm.calibrated(variation, 'argmax'),
        annotators: F.sigmoid(logits),
      };
    }));
  }

  /**
   * The consensus logit [B, 1, K, H, W] and the APM's departures of all M annotators [B, M, K, H, W],
   * from one backbone pass: what the gate's candidates are built from.
   */
  departures(x: Tensor): { variation: Tensor[]; consensus: Tensor; departures: Tensor } {
    const { variation, consensus, departures } = this.heads(x, this.annotatorsPerImage(x.shape[0]));
    return { variation, consensus: consensus!, departures: departures! };
  }

  private gatedLogits(x: Tensor, annotators?: number[]): { variation: Tensor[]; logits: Tensor } {
    return tidy(() => {
      if (this.gate.isIdentity()) {
        const out = this.forward(x, this.annotatorsPerImage(x.shape[0], annotators));
        return { variation: out.variation, logits: out.preference! };
      }
      const { variation, consensus, departures } = this.departures(x);
      const all = this.gate.forward(consensus, departures);
      const logits = annotators ? all.indexSelect(1, tensor(BigInt64Array.from(annotators, BigInt), [annotators.length]).to(all.device)) : all;
      return { variation, logits };
    });
  }

  /** The same annotators (0-based; default every one) for each of `batch` images. */
  private annotatorsPerImage(batch: number, annotators = Array.from({ length: this.annotatorCount }, (_, k) => k)): number[][] {
    return Array.from({ length: batch }, () => annotators);
  }
}

/** Keeps the consensus logit finite where the AVM is certain: ±9.2. */
const CONSENSUS_EPS = 1e-4;

/**
 * logit(expected agreement / M) per structure, [B, K, H, W], without gradient. Annotator m's map is
 * σ(consensus logit + APM_m): the APM models only how annotator m departs from what the AVM says the
 * annotators agree on (the paper models preference apart from variation), so a structure on which the
 * annotators hardly differ (the disc) keeps the AVM's accuracy, and the small dynamic head spends its
 * capacity on the styles. Detached, so per-annotator losses never move the AVM.
 */
function consensusLogits(variation: Tensor[], annotators: number): Tensor {
  return tidy(() => {
    const p = cat(variation.map((l) => expectedAgreement(l.detach(), annotators).unsqueeze(1)), 1).clamp(CONSENSUS_EPS, 1 - CONSENSUS_EPS);
    return p.log().sub(p.neg().add(1).log());
  });
}
