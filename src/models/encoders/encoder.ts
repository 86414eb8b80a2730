// What a U-Net backbone needs from an encoder, whatever its architecture.
import { Tensor, loadStateDict, nn, tidy } from '../../torch';

export interface Encoder extends nn.Module {
  /** Channels of each returned feature map, shallow to deep (the last is the bottleneck). */
  readonly outChannels: readonly number[];
  /** Total downsampling of the deepest map: inputs must be multiples of it. */
  readonly reduction: number;
  /** The feature maps, shallow to deep. */
  forward(x: Tensor): Tensor[];
  /** Loads ImageNet weights converted from torchvision (safetensors, torchvision's names); a UserError when incomplete. */
  loadPretrained(file: string): void;
}

/** Prefixes other exporters put in front of torchvision's names. */
const FOREIGN_PREFIX = /^(encoder\.|backbone\.encoder\.|module\.)/;

/**
 * torchvision-named weights (conv1.weight, layer1.0.conv1.weight, …) into `encoder`. Keys it does not
 * have (the classifier fc.*) are ignored; every tensor it has must be present with its shape.
 */
export function loadTorchvisionWeights(encoder: nn.Module, file: string): void {
  tidy(() => {
    const { state } = loadStateDict(file);
    const own = encoder.stateDict();
    const source: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(state)) {
      const key = k.replace(FOREIGN_PREFIX, '');
      if (key in own) source[key] = v;
    }
    encoder.loadStateDict(source, { source: file });
  });
}
