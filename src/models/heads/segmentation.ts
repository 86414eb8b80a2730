// The plain segmentation head of the paper's baselines (M1–M6, MV-UNet, LS-UNet, MH-UNet, …): a small
// conv block on the backbone's features F_img, then a 1×1 convolution to one logit per output channel
// (per structure for a segmentation; structures may overlap, e.g. disc ⊃ cup, so each gets its own sigmoid).
import { nn } from '../../torch';

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
}
