// The Annotator Variation Modeling (AVM) head, section III-C: per structure, a branch that classifies
// every pixel into how many of the M annotators mark it (0..M), Eq. 2–3.
import { F, Tensor, arange, cat, inPrecision, nn, noGrad, tensor, tidy } from '../../torch';

/** How the M+1 class probabilities become one calibrated probability map in [0, 1]. */
export type Calibration = 'expectation' | 'argmax';

/** conv 3×3 → ReLU → BN, the unit the paper repeats twice per block (the ReLU overwrites the conv's output). */
function convReluBn(inChannels: number, outChannels: number): nn.Layer[] {
  return [new nn.Conv2d(inChannels, outChannels, 3, { padding: 1 }), new nn.ReLU({ inplace: true }), new nn.BatchNorm2d(outChannels)];
}

/** Frequencies below this are raised to it, so a class never seen in training keeps a finite logit. */
const MIN_PRIOR = 1e-4;

/** One branch: two blocks of (conv → ReLU → BN) × 2, then a 1×1 conv to M + 1 agreement classes. */
export class VariationBranch extends nn.Sequential {
  /** The final 1×1 convolution to the agreement classes. */
  readonly classifier: nn.Conv2d;

  constructor(inChannels: number, hidden: number, readonly annotators: number) {
    const classifier = new nn.Conv2d(hidden, annotators + 1, 1);
    super(
      ...convReluBn(inChannels, hidden), ...convReluBn(hidden, hidden),
      ...convReluBn(hidden, hidden), ...convReluBn(hidden, hidden),
      classifier,
    );
    this.classifier = classifier;
  }

  /**
   * Starts the classifier at the training pixels' class frequencies: its biases become their logs,
   * so the first prediction is close to the prior — "almost surely nobody marks this
   * pixel" — instead of a uniform 1/(M+1) per class, i.e. an expected agreement of one half everywhere.
   * From the uniform start the whole network first spends hundreds of steps learning that prior;
   * from the prior, its first steps go to where the structure is (RetinaNet's prior initialisation).
   */
  initializePrior(classCounts: number[]): void {
    if (classCounts.length !== this.annotators + 1) throw new Error(`VariationBranch.initializePrior: expected ${this.annotators + 1} class counts, got ${classCounts.length}`);
    const total = classCounts.reduce((a, b) => a + b, 0);
    if (!(total > 0)) return;
    const logits = classCounts.map((n) => Math.log(Math.max(n / total, MIN_PRIOR)));
    noGrad(() => void this.classifier.bias!.copy_(tensor(Float32Array.from(logits), [logits.length])));
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
    // The branches are stacks of full-resolution 3×3 convolutions, most of AVAP's step-1 arithmetic;
    // oneDNN runs them much faster in channels-last memory (README, "Speed"). The values are the same.
    return tidy(() => {
      const nhwc = features.contiguous('channels_last');
      return this.branches.items.map((b) => inPrecision(this.precision, () => b.forward(nhwc), nhwc.device).contiguous());
    });
  }

  /** Per structure, the training pixels' counts of each agreement class 0..M. */
  initializePrior(classCounts: number[][]): void {
    this.branches.items.forEach((b, s) => b.initializePrior(classCounts[s]));
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
