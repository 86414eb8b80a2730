// The Res-U-Net segmentation network of the single-output baselines (M1–M6, MV-UNet, LS-UNet): the
// shared backbone F_B and one segmentation head with a sigmoid output per structure.
import { Tensor, nn, tidy } from '../torch';
import { BackboneConfig, UnetBackbone } from './backbone';
import { SegmentationHead } from './heads/segmentation';

export class SegmentationUnet extends nn.Module {
  readonly backbone: UnetBackbone;
  readonly head: SegmentationHead;

  constructor(backbone: BackboneConfig, structures: number) {
    super();
    this.backbone = this.registerModule('backbone', new UnetBackbone(backbone));
    this.head = this.registerModule('head', new SegmentationHead(backbone.featureChannels, structures));
  }

  /** Its one map per structure starts at the structure's training foreground frequency. */
  initializePrior(foregroundFrequencies: number[]): void {
    this.head.initializePrior(foregroundFrequencies);
  }

  /** Logits [B, K, H, W]. */
  forward(x: Tensor): Tensor {
    return tidy(() => this.head.forward(this.backbone.forward(x)));
  }
}
