// The plain segmentation head of the paper's baselines (M1–M6, MV-UNet, LS-UNet, MH-UNet, …): a small
// conv block on the backbone's features F_img, then a 1×1 convolution to one logit per output channel
// (per structure for a segmentation; structures may overlap, e.g. disc ⊃ cup, so each gets its own sigmoid).
import { nn, noGrad, tensor, tidy } from '../../torch';

export class SegmentationHead extends nn.Sequential {
  /** The final 1×1 convolution, exposed so a method can initialise its bias (e.g. CM-Net's identity prior). */
  readonly classifier: nn.Conv2d;

  constructor(inChannels: number, outChannels: number, hidden = inChannels) {
    const classifier = new nn.Conv2d(hidden, outChannels, 1);
    // F_img is the decoder's last transposed convolution, un-normalised: a 3×3 conv → BN → ReLU gives
    // each head a little capacity of its own before the classifier.
    super(new nn.Conv2d(inChannels, hidden, 3, { padding: 1 }), new nn.BatchNorm2d(hidden), new nn.ReLU(), classifier);
    this.classifier = classifier;
  }

  /**
   * Starts sigmoid outputs at the training set's foreground frequencies (RetinaNet's prior
   * initialisation): the bias of each becomes logit(p_s), so before it has learnt anything the head
   * predicts "foreground as often as in training" instead of ½ everywhere, and the first steps go to
   * where the structures are rather than to how rare they are.
   *
   * `foregroundFrequencies` has one entry per structure, each in (0, 1). The head's first `channels`
   * outputs (default: all) are read as channels / K consecutive groups of the K structures — one map
   * per structure, or an [M, K] layout flattened structure-fastest — and each gets its structure's
   * prior; outputs after them (e.g. log-variances) keep their initialisation.
   */
  initializePrior(foregroundFrequencies: number[], channels = this.classifier.outChannels): void {
    const K = foregroundFrequencies.length;
    if (K === 0 || channels % K !== 0 || channels > this.classifier.outChannels) {
      throw new Error(`SegmentationHead.initializePrior: ${channels} of ${this.classifier.outChannels} outputs are not groups of ${K} structures`);
    }
    for (const p of foregroundFrequencies) {
      if (!(p > 0 && p < 1)) throw new Error(`SegmentationHead.initializePrior: a foreground frequency must lie in (0, 1), got ${p}`);
    }
    const logits = Float32Array.from({ length: channels }, (_, c) => {
      const p = foregroundFrequencies[c % K];
      return Math.log(p / (1 - p));
    });
    noGrad(() => tidy(() => void this.classifier.bias!.narrow(0, 0, channels).copy_(tensor(logits, [channels]))));
  }
}
