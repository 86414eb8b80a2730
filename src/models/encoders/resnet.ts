// ResNet encoders with torchvision's layout and parameter names (conv1, bn1, layer1.0.conv1, …, no fc),
// so ImageNet weights converted from torchvision load 1:1.
import { F, Tensor, nn, tidy } from '../../torch';
import { Encoder, loadTorchvisionWeights } from './encoder';

/** torchvision's BasicBlock: two 3×3 convs with a residual connection (1×1 projection when the shape changes). */
class BasicBlock extends nn.Module {
  static readonly expansion = 1;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;

  constructor(inChannels: number, width: number, stride: number) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inChannels, width, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(width));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(width, width, 3, { padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(width));
    this.downsample = needsProjection(inChannels, width, stride) ? this.registerModule('downsample', projection(inChannels, width, stride)) : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.bn2.forward(this.conv2.forward(F.relu_(this.bn1.forward(this.conv1.forward(x)))));
      return F.relu_(h.add(this.downsample ? this.downsample.forward(x) : x));
    });
  }
}

/** torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3×3 conv): 1×1 → 3×3 → 1×1 to 4× the width. */
class Bottleneck extends nn.Module {
  static readonly expansion = 4;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly conv3: nn.Conv2d;
  readonly bn3: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;

  constructor(inChannels: number, width: number, stride: number) {
    super();
    const out = width * Bottleneck.expansion;
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inChannels, width, 1, { bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(width));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(width, width, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(width));
    this.conv3 = this.registerModule('conv3', new nn.Conv2d(width, out, 1, { bias: false }));
    this.bn3 = this.registerModule('bn3', new nn.BatchNorm2d(out));
    this.downsample = needsProjection(inChannels, out, stride) ? this.registerModule('downsample', projection(inChannels, out, stride)) : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = F.relu_(this.bn1.forward(this.conv1.forward(x)));
      h = F.relu_(this.bn2.forward(this.conv2.forward(h)));
      h = this.bn3.forward(this.conv3.forward(h));
      return F.relu_(h.add(this.downsample ? this.downsample.forward(x) : x));
    });
  }
}

/** A block that changes the resolution or the channels projects its residual with a 1×1 convolution. */
function needsProjection(inChannels: number, outChannels: number, stride: number): boolean {
  return stride !== 1 || inChannels !== outChannels;
}

function projection(inChannels: number, outChannels: number, stride: number): nn.Sequential {
  return new nn.Sequential(new nn.Conv2d(inChannels, outChannels, 1, { stride, bias: false }), new nn.BatchNorm2d(outChannels));
}

const BLOCKS = { basic: BasicBlock, bottleneck: Bottleneck };

/** A ResNet as data: torchvision's resnet18 is { block: 'basic', layers: [2, 2, 2, 2], widths: [64, 128, 256, 512] }. */
export interface ResNetSpec {
  block: keyof typeof BLOCKS;
  /** Blocks per stage (layer1..layerN). */
  layers: number[];
  /** Width of each stage (a bottleneck's output is 4× its width). */
  widths: number[];
}

/** Channels of the stem. */
const STEM = 64;

/** The feature maps a ResNet returns, shallow to deep: the stem (H/2), then every stage. */
export function resnetOutChannels(spec: ResNetSpec): number[] {
  return [STEM, ...spec.widths.map((w) => w * BLOCKS[spec.block].expansion)];
}

/** The stem and its max-pool halve the input twice, every stage after the first once more. */
export function resnetReduction(spec: ResNetSpec): number {
  return 2 ** (2 + spec.layers.length - 1);
}

/** A ResNet trunk returning the feature maps a U-Net decoder needs: the stem's, then each stage's. */
export class ResNetEncoder extends nn.Module implements Encoder {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly layers: nn.Sequential[];
  readonly outChannels: readonly number[];
  readonly reduction: number;

  constructor(spec: ResNetSpec, inChannels = 3) {
    super();
    if (spec.layers.length !== spec.widths.length) throw new Error(`ResNetEncoder: ${spec.layers.length} stages but ${spec.widths.length} widths`);
    const Block = BLOCKS[spec.block];
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inChannels, STEM, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(STEM));
    let channels = STEM;
    this.layers = spec.widths.map((width, stage) => {
      const blocks: nn.Layer[] = [];
      for (let b = 0; b < spec.layers[stage]; b++) {
        blocks.push(new Block(channels, width, b === 0 && stage > 0 ? 2 : 1));
        channels = width * Block.expansion;
      }
      return this.registerModule(`layer${stage + 1}`, new nn.Sequential(...blocks));
    });
    this.outChannels = resnetOutChannels(spec);
    this.reduction = resnetReduction(spec);
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

  loadPretrained(file: string): void {
    loadTorchvisionWeights(this, file);
  }
}
