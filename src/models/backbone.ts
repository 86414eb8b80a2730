// The encoder–decoder backbone F_B of the paper (Eq. 1): image → feature maps F_img at the input size.
import { UserError } from '../errors';
import { Tensor, inPrecision, nn } from '../torch';
import { Encoder } from './encoders/encoder';
import { createEncoder } from './encoders/registry';
import { UnetDecoder } from './decoders/unet';

export interface BackboneConfig {
  encoder: string;
  inChannels: number;
  featureChannels: number;
}

export const DEFAULT_BACKBONE: BackboneConfig = { encoder: 'resnet34', inChannels: 3, featureChannels: 32 };

export class UnetBackbone extends nn.Module {
  readonly encoder: Encoder;
  readonly decoder: UnetDecoder;

  constructor(readonly config: BackboneConfig = DEFAULT_BACKBONE) {
    super();
    this.encoder = this.registerModule('encoder', createEncoder(config.encoder, config.inChannels));
    this.decoder = this.registerModule('decoder', new UnetDecoder([...this.encoder.outChannels], config.featureChannels));
  }

  /** Rejects inputs the network cannot take, saying which sizes work. */
  checkInput(x: Tensor): void {
    const r = this.encoder.reduction;
    if (x.ndim !== 4) throw new UserError(`model input must be 4-D [N, C, H, W], got shape [${x.shape.join(', ')}]`);
    const [, c, h, w] = x.shape;
    if (c !== this.config.inChannels) throw new UserError(`model input has ${c} channels, the model was built for ${this.config.inChannels}`);
    if (h % r !== 0 || w % r !== 0 || h < r || w < r) {
      const near = (v: number) => Math.max(r, Math.round(v / r) * r);
      throw new UserError(`model input is ${h}×${w}, but height and width must be positive multiples of ${r} (e.g. ${near(h)}×${near(w)}, 256×256)`);
    }
  }

  /**
   * F_img [B, featureChannels, H, W], float32 in channels-last memory: oneDNN runs every convolution on
   * NHWC data without reordering it (a ResNet34 U-Net step measured 0.9× NCHW's time in float32, and
   * bfloat16 needs it to pay off: README, "Speed"). The values are NCHW's up to float rounding.
   */
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    return inPrecision(this.precision, () => this.decoder.forward(this.encoder.forward(x.contiguous('channels_last'))), x.device);
  }
}
