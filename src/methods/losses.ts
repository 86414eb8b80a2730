// The training objective of section III-E: Dice + cross-entropy (Eq. 7–9), for both heads.
import { expectedAgreement } from '../models/heads/variation';
import { F, Tensor, tidy } from '../torch';

const EPS = 1e-5;

/**
 * Soft Dice loss (Eq. 8) between probabilities and (possibly soft) targets of the same shape [B, ...],
 * computed per image and averaged, so a small structure in one image weighs as much as a large one.
 */
export function softDiceLoss(probabilities: Tensor, targets: Tensor): Tensor {
  return tidy(() => {
    const p = probabilities.flatten(1);
    const y = targets.flatten(1);
    const dice = p.mul(y).sum(1).mul(2).add(EPS).div(p.sum(1).add(y.sum(1)).add(EPS));
    return dice.rsub(1).mean();
  });
}

/**
 * AVM loss for one structure: cross-entropy over the M + 1 agreement classes plus a soft Dice between
 * the calibrated map (expected count / M) and the mean vote — Dice on the quantity the paper scores.
 */
export function variationLoss(logits: Tensor, counts: Tensor, meanVote: Tensor, annotators: number): Tensor {
  return tidy(() => {
    const ce = F.crossEntropy(logits, counts);
    return ce.add(softDiceLoss(expectedAgreement(logits, annotators), meanVote));
  });
}

/** APM loss: binary cross-entropy plus soft Dice between sigmoid(logits) and one annotator's masks. */
export function preferenceLoss(logits: Tensor, masks: Tensor): Tensor {
  return tidy(() => F.binaryCrossEntropyWithLogits(logits, masks).add(softDiceLoss(F.sigmoid(logits), masks)));
}

/**
 * The baselines' segmentation loss on logits: binary cross-entropy plus soft Dice (Eq. 7–9 with one
 * sigmoid per structure). Targets may be soft (the mean vote) or one annotator's 0/1 masks.
 */
export function segmentationLoss(logits: Tensor, targets: Tensor): Tensor {
  return preferenceLoss(logits, targets);
}

const PROBABILITY_EPS = 1e-6;

/**
 * The same objective on probabilities rather than logits, for methods whose prediction is a mixture
 * of probabilities (CM-Net's noisy-label predictions A·p): BCE (clamped away from log 0) plus soft Dice.
 */
export function probabilityLoss(probabilities: Tensor, targets: Tensor): Tensor {
  return tidy(() => {
    const p = probabilities.clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS);
    const bce = targets.mul(p.log()).add(targets.rsub(1).mul(p.rsub(1).log())).neg().mean();
    return bce.add(softDiceLoss(probabilities, targets));
  });
}

/**
 * Negative log of the Monte-Carlo likelihood of the targets under Gaussian logits N(mean, exp(logVar))
 * (heteroscedastic "stochastic error", Kendall & Gal 2017, as PADL uses it):
 * −log (1/T Σ_t p(y | mean + σ·ε_t)), averaged over pixels. Unlike the mean of per-sample BCEs, this
 * lets a large variance lower the loss where the targets are ambiguous. `noise` holds the ε_t:
 * shape [T, ...mean.shape], drawn by the caller so the draw is reproducible under its seed.
 */
export function sampledLikelihoodLoss(mean: Tensor, logVar: Tensor, targets: Tensor, noise: Tensor): Tensor {
  return tidy(() => {
    const T = noise.shape[0];
    const logits = mean.unsqueeze(0).add(logVar.mul(0.5).exp().unsqueeze(0).mul(noise)); // [T, ...]
    const expanded = targets.unsqueeze(0).expand(logits.shape);
    // log p(y | z) = −BCE(z, y) per element (also for soft y: the cross-entropy form).
    const logLikelihood = F.binaryCrossEntropyWithLogits(logits, expanded, null, 'none').neg();
    return logLikelihood.logsumexp(0).sub(Math.log(T)).neg().mean();
  });
}
