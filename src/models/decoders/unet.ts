// The U-Net decoder of the paper's Res-U-Net backbone (section III-B), in the layout of the public
// RIGA multi-rater code it follows: each of the first four blocks upsamples the deeper map with a
// stride-2 transposed convolution, projects the skip features with a 1×1 convolution, concatenates
// both, then applies ReLU and BatchNorm; the fifth block only upsamples to the input size.
import { F, Tensor, cat, nn, tidy } from '../../torch';

class UnetBlock extends nn.Module {
  readonly tr_conv: nn.ConvTranspose2d;
  readonly x_conv: nn.Conv2d;
  readonly bn: nn.BatchNorm2d;

  constructor(upChannels: number, skipChannels: number, outChannels: number) {
    super();
    this.tr_conv = this.registerModule('tr_conv', new nn.ConvTranspose2d(upChannels, outChannels / 2, 2, { stride: 2 }));
    this.x_conv = this.registerModule('x_conv', new nn.Conv2d(skipChannels, outChannels / 2, 1));
    this.bn = this.registerModule('bn', new nn.BatchNorm2d(outChannels));
  }

  forward(up: Tensor, skip: Tensor): Tensor {
    return tidy(() => this.bn.forward(F.relu_(cat([this.tr_conv.forward(up), this.x_conv.forward(skip)], 1))));
  }
}

export class UnetDecoder extends nn.Module {
  readonly blocks: UnetBlock[];
  readonly up5: nn.ConvTranspose2d;

  /** encoderChannels: shallow to deep (5 maps); the output has `outChannels` maps at the input size. */
  constructor(encoderChannels: number[], readonly outChannels = 32, width = 256) {
    super();
    if (encoderChannels.length !== 5) throw new Error(`UnetDecoder: expected 5 encoder feature maps, got ${encoderChannels.length}`);
    const [s0, s1, s2, s3, bottleneck] = encoderChannels;
    this.blocks = [
      this.registerModule('up1', new UnetBlock(bottleneck, s3, width)),
      this.registerModule('up2', new UnetBlock(width, s2, width)),
      this.registerModule('up3', new UnetBlock(width, s1, width)),
      this.registerModule('up4', new UnetBlock(width, s0, width)),
    ];
    this.up5 = this.registerModule('up5', new nn.ConvTranspose2d(width, outChannels, 2, { stride: 2 }));
  }

  forward(features: Tensor[]): Tensor {
    let h = features[4];
    for (let i = 0; i < 4; i++) {
      const next = this.blocks[i].forward(h, features[3 - i]);
      if (h !== features[4]) h.dispose();
      h = next;
    }
    const out = this.up5.forward(h);
    h.dispose();
    return out;
  }
}
