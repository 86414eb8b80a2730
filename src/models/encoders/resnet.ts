// ResNet encoders with torchvision's layout and parameter names (conv1, bn1, layer1.0.conv1, …, no fc),
// so ImageNet weights converted from torchvision load 1:1.
import { F, Tensor, nn, tidy } from '../../torch';

/** torchvision's BasicBlock: two 3×3 convs with a residual connection (1×1 projection when the shape changes). */
class BasicBlock extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;

  constructor(inChannels: number, outChannels: number, stride: number) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(outChannels));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(outChannels, outChannels, 3, { padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(outChannels));
    this.downsample = stride !== 1 || inChannels !== outChannels
      ? this.registerModule('downsample', new nn.Sequential(new nn.Conv2d(inChannels, outChannels, 1, { stride, bias: false }), new nn.BatchNorm2d(outChannels)))
      : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.residual(x));
  }

  private residual(x: Tensor): Tensor {
    const h = this.bn2.forward(this.conv2.forward(F.relu_(this.bn1.forward(this.conv1.forward(x)))));
    const identity = this.downsample ? this.downsample.forward(x) : x;
    return F.relu_(h.add(identity));
  }
}

export interface EncoderFeatures {
  /** Skip features from shallow to deep; the last entry is the bottleneck. */
  features: Tensor[];
}

/**
 * A ResNet trunk returning the five feature maps a U-Net decoder needs:
 * stem (64, H/2), layer1 (64, H/4), layer2 (128, H/8), layer3 (256, H/16), layer4 (512, H/32).
 */
export class ResNetEncoder extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly layers: nn.Sequential[];
  /** Channels of each returned feature map, shallow to deep. */
  readonly outChannels: number[];
  /** Total downsampling: inputs must be multiples of it. */
  readonly reduction = 32;

  constructor(blocksPerStage: number[], inChannels = 3) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inChannels, 64, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(64));
    const widths = [64, 128, 256, 512];
    let channels = 64;
    this.layers = widths.map((width, stage) => {
      const blocks: nn.Layer[] = [];
      for (let b = 0; b < blocksPerStage[stage]; b++) {
        blocks.push(new BasicBlock(b === 0 ? channels : width, width, b === 0 && stage > 0 ? 2 : 1));
      }
      channels = width;
      return this.registerModule(`layer${stage + 1}`, new nn.Sequential(...blocks));
    });
    this.outChannels = [64, ...widths];
  }

  forward(x: Tensor): Tensor[] {
    const stem = F.relu_(this.bn1.forward(this.conv1.forward(x)));
    const features = [stem];
    let h = F.maxPool2d(stem, 3, { stride: 2, padding: 1 });
    for (const layer of this.layers) {
      h = layer.forward(h);
      features.push(h);
    }
    return features;
  }
}

/** Encoders by name: plain data, as in segmentation_models.pytorch. */
export const ENCODERS: Record<string, { blocks: number[]; description: string }> = {
  resnet18: { blocks: [2, 2, 2, 2], description: 'ResNet18 (torchvision layout)' },
  resnet34: { blocks: [3, 4, 6, 3], description: 'ResNet34 (torchvision layout), the paper\'s encoder' },
};

export function createEncoder(name: string, inChannels = 3): ResNetEncoder {
  const spec = ENCODERS[name];
  if (!spec) throw new Error(`unknown encoder '${name}' (known: ${Object.keys(ENCODERS).join(', ')})`);
  return new ResNetEncoder(spec.blocks, inChannels);
}
