// PyTorch's default initialisations, drawn from the same global generator in the same order,
// so a model built after manualSeed(s) holds the same numbers as its PyTorch twin.
import { Tensor } from '../tensor';

/** fan_in as torch.nn.init._calculate_fan_in_and_fan_out computes it: size(1) × receptive field. */
export function fanIn(weight: Tensor): number {
  const [, inputs, ...kernel] = weight.shape;
  return inputs * kernel.reduce((a, b) => a * b, 1);
}

/** kaiming_uniform_(a = √5), the default for Conv*d and Linear weights: bound = 1 / √fan_in. */
export function kaimingUniformDefault(weight: Tensor): void {
  const bound = Math.sqrt(6 / ((1 + 5) * fanIn(weight)));
  weight.uniform_(-bound, bound);
}

/** kaiming_normal_ (fan_out, relu): torchvision ResNet's explicit conv init, offered for completeness. */
export function kaimingNormalFanOut(weight: Tensor): void {
  const [out, , ...kernel] = weight.shape;
  const fanOut = out * kernel.reduce((a, b) => a * b, 1);
  weight.normal_(0, Math.sqrt(2 / fanOut));
}

/** The default bias init of Conv*d and Linear: uniform(±1/√fan_in of the weight). */
export function biasUniformDefault(bias: Tensor, weight: Tensor): void {
  const fan = fanIn(weight);
  const bound = fan > 0 ? 1 / Math.sqrt(fan) : 0;
  bias.uniform_(-bound, bound);
}
