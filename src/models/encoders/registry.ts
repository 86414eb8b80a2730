// Encoders by name, as plain data (as in segmentation_models.pytorch): what `--encoder` accepts, and how
// a run's config.json rebuilds its encoder. Add an entry to add an encoder.
import { UserError } from '../../errors';
import { Encoder } from './encoder';
import { ResNetEncoder, ResNetSpec, resnetOutChannels, resnetReduction } from './resnet';

export interface EncoderEntry extends ResNetSpec {
  description: string;
}

export const ENCODERS: Record<string, EncoderEntry> = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2], widths: [64, 128, 256, 512], description: 'ResNet18 (torchvision layout)' },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3], widths: [64, 128, 256, 512], description: "ResNet34 (torchvision layout), the paper's encoder" },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3], widths: [64, 128, 256, 512], description: 'ResNet50 (torchvision layout, Bottleneck blocks)' },
};

export function encoderNames(): string[] {
  return Object.keys(ENCODERS);
}

function entry(name: string): EncoderEntry {
  const spec = ENCODERS[name];
  if (!spec) throw new UserError(`unknown encoder '${name}' (known: ${encoderNames().join(', ')})`);
  return spec;
}

export function createEncoder(name: string, inChannels = 3): Encoder {
  return new ResNetEncoder(entry(name), inChannels);
}

/** What an encoder's shape is, without building it: feature channels per stage and the total downsampling. */
export function encoderInfo(name: string): { outChannels: number[]; reduction: number } {
  const spec = entry(name);
  return { outChannels: resnetOutChannels(spec), reduction: resnetReduction(spec) };
}

/** The input side must be a multiple of the encoder's downsampling; a UserError naming `flag` otherwise. */
export function checkInputSize(flag: string, size: number, encoder: string): void {
  const r = encoderInfo(encoder).reduction;
  if (size % r !== 0) throw new UserError(`${flag} must be a multiple of ${r} (the encoder downsamples ${r}×), got ${size}`);
}
