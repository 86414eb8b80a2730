// The Annotator Variation Modeling (AVM) head, section III-C: per structure, a branch that classifies
// every pixel into how many of the M annotators mark it (0..M), Eq. 2–3.
import { F, Tensor, arange, cat, nn, noGrad, tensor, tidy } from '../../torch';

/** How the M+1 class probabilities become one calibrated probability map in [0, 1]. */
export type Calibration = 'expectation' | 'argmax';

const VARIANT = process.env.AVAP_AVM ?? 'paper';

/** conv 3×3 → ReLU → BN, the unit the paper repeats twice per block. */
function convReluBn(inChannels: number, outChannels: number): nn.Layer[] {
  return [new nn.Conv2d(inChannels, outChannels, 3, { padding: 1 }), new nn.ReLU(), new nn.BatchNorm2d(outChannels)];
}

function logBinomial(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s;
}

/** One branch: two blocks of (conv → ReLU → BN) × 2, then a 1×1 conv to M + 1 agreement classes. */
export class VariationBranch extends nn.Module {
  readonly body: nn.Sequential;
  readonly classifier: nn.Conv2d;
  readonly agreement: nn.Conv2d | null;

  constructor(inChannels: number, hidden: number, readonly annotators: number) {
    super();
    this.body = this.registerModule('body', new nn.Sequential(
      ...convReluBn(inChannels, hidden), ...convReluBn(hidden, hidden),
      ...convReluBn(hidden, hidden), ...convReluBn(hidden, hidden)));
    this.classifier = this.registerModule('classifier', new nn.Conv2d(hidden, annotators + 1, 1));
    this.agreement = VARIANT === 'binomial' ? this.registerModule('agreement', new nn.Conv2d(hidden, 1, 1)) : null;
    if (this.agreement) noGrad(() => { this.classifier.weight.zero_(); this.classifier.bias!.zero_(); });
  }

  /** Starts the classifier at the training set's class frequencies (prior initialisation). */
  setPrior(frequencies: number[]): void {
    const M = this.annotators;
    const f = frequencies.map((x) => Math.max(x, 1e-6));
    const total = f.reduce((a, b) => a + b, 0);
    const p = f.map((x) => x / total);
    noGrad(() => {
      if (this.agreement) {
        const mean = p.reduce((a, x, c) => a + c * x, 0) / M;
        const z = Math.log(mean / (1 - mean));
        this.agreement.bias!.fill_(z);
        // Residual: the true marginal over the binomial's marginal at that mean.
        const binom = p.map((_, c) => logBinomial(M, c) + c * Math.log(mean) + (M - c) * Math.log(1 - mean));
        this.classifier.bias!.copy_(tensor(Float32Array.from(p, (x, c) => Math.log(x) - binom[c]), [M + 1]));
      } else if (VARIANT === 'prior') {
        this.classifier.bias!.copy_(tensor(Float32Array.from(p, (x) => Math.log(x)), [M + 1]));
      }
    });
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.body.forward(x);
      const r = this.classifier.forward(h);
      if (!this.agreement) return r;
      const M = this.annotators;
      const z = this.agreement.forward(h);
      const c = arange(0, M + 1, 1, { dtype: 'float32' }).view([1, M + 1, 1, 1]);
      const logC = tensor(Float32Array.from({ length: M + 1 }, (_, k) => logBinomial(M, k)), [1, M + 1, 1, 1]);
      return z.mul(c).add(logC).add(r);
    });
  }
}

export class VariationHead extends nn.Module {
  readonly branches: nn.ModuleList<VariationBranch>;

  constructor(inChannels: number, readonly structures: number, readonly annotators: number, hidden = 32) {
    super();
    this.branches = this.registerModule('branches', new nn.ModuleList(
      Array.from({ length: structures }, () => new VariationBranch(inChannels, hidden, annotators))));
  }

  /** Agreement-class logits, one [B, M+1, H, W] tensor per structure. */
  forward(features: Tensor): Tensor[] {
    return this.branches.items.map((b) => b.forward(features));
  }

  /**
   * Calibrated map per structure, [B, K, H, W] in [0, 1]. 'expectation' is the expected number of
   * annotators divided by M (Σ_c c·softmax_c / M): smooth and differentiable. 'argmax' is the most
   * likely count divided by M, as the authors' code does.
   */
  calibrated(logits: Tensor[], mode: Calibration = 'expectation'): Tensor {
    return tidy(() => {
      const M = this.annotators;
      const maps = logits.map((l) => {
        return mode === 'argmax' ? l.argmax(1).float().div(M) : expectedAgreement(l, M);
      });
      return cat(maps.map((m) => m.unsqueeze(1)), 1);
    });
  }
}

/** Σ_c c·softmax_c / M over agreement-class logits [B, M+1, H, W] → [B, H, W]: differentiable, so the loss uses it too. */
export function expectedAgreement(logits: Tensor, annotators: number): Tensor {
  return tidy(() => {
    const classes = annotators + 1;
    const counts = arange(0, classes, 1, { dtype: 'float32', device: logits.device }).view([1, classes, 1, 1]);
    return F.softmax(logits, 1).mul(counts).sum(1).div(annotators);
  });
}
