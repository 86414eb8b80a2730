// The standard layers, with PyTorch's parameter names, shapes and default initialisation.
import { cat, zeros, ones, tensor } from '../creation';
import { allReduceSum } from '../distributed';
import * as F from '../functional';
import { Tensor, noGrad, tidy } from '../tensor';
import { pair, positiveInt } from '../validate';
import { biasUniformDefault, kaimingUniformDefault } from './init';
import { Module } from './module';

export interface Conv2dOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly options: Required<Omit<Conv2dOptions, 'bias'>>;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | number[], opts: Conv2dOptions = {}) {
    super();
    const groups = positiveInt('Conv2d', 'groups', opts.groups ?? 1);
    if (inChannels % groups !== 0 || outChannels % groups !== 0) throw new Error(`Conv2d: channels (${inChannels}, ${outChannels}) must be divisible by groups (${groups})`);
    const [kh, kw] = pair('Conv2d', 'kernelSize', kernelSize, 1);
    this.options = { stride: opts.stride ?? 1, padding: opts.padding ?? 0, dilation: opts.dilation ?? 1, groups };
    this.weight = this.registerParameter('weight', zeros([outChannels, inChannels / groups, kh, kw]));
    this.bias = this.registerParameter('bias', opts.bias === false ? null : zeros([outChannels]));
    noGrad(() => {
      kaimingUniformDefault(this.weight);
      if (this.bias) biasUniformDefault(this.bias, this.weight);
    });
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.options);
  }
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: number | number[];
}

export class ConvTranspose2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly options: Required<Omit<ConvTranspose2dOptions, 'bias'>>;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | number[], opts: ConvTranspose2dOptions = {}) {
    super();
    const groups = positiveInt('ConvTranspose2d', 'groups', opts.groups ?? 1);
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(`ConvTranspose2d: channels (${inChannels}, ${outChannels}) must be divisible by groups (${groups})`);
    }
    const [kh, kw] = pair('ConvTranspose2d', 'kernelSize', kernelSize, 1);
    this.options = { stride: opts.stride ?? 1, padding: opts.padding ?? 0, dilation: opts.dilation ?? 1, groups, outputPadding: opts.outputPadding ?? 0 };
    // PyTorch stores transposed-conv weights as [in, out/groups, kH, kW].
    this.weight = this.registerParameter('weight', zeros([inChannels, outChannels / groups, kh, kw]));
    this.bias = this.registerParameter('bias', opts.bias === false ? null : zeros([outChannels]));
    noGrad(() => {
      kaimingUniformDefault(this.weight);
      if (this.bias) biasUniformDefault(this.bias, this.weight);
    });
  }

  forward(x: Tensor): Tensor {
    return F.convTranspose2d(x, this.weight, this.bias, this.options);
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean } = {}) {
    super();
    this.weight = this.registerParameter('weight', zeros([outFeatures, inFeatures]));
    this.bias = this.registerParameter('bias', opts.bias === false ? null : zeros([outFeatures]));
    noGrad(() => {
      kaimingUniformDefault(this.weight);
      if (this.bias) biasUniformDefault(this.bias, this.weight);
    });
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly numBatchesTracked: Tensor;

  constructor(readonly numFeatures: number, readonly opts: { eps?: number; momentum?: number } = {}) {
    super();
    this.weight = this.registerParameter('weight', ones([numFeatures]));
    this.bias = this.registerParameter('bias', zeros([numFeatures]));
    this.runningMean = this.registerBuffer('running_mean', zeros([numFeatures]));
    this.runningVar = this.registerBuffer('running_var', ones([numFeatures]));
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', tensor(new BigInt64Array(1), []));
  }

  /**
   * PyTorch's SyncBatchNorm: in training, the batch statistics are those of the batch over every rank
   * of the process group (convertSyncBatchNorm sets it; one process never does).
   */
  sync = false;

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new Error(`BatchNorm2d: input must be 4-D [N, C, H, W], got shape [${x.shape.join(', ')}]`);
    if (x.shape[1] !== this.numFeatures) throw new Error(`BatchNorm2d: input has ${x.shape[1]} channels, expected ${this.numFeatures}`);
    if (this.training) noGrad(() => tidy(() => void this.numBatchesTracked.copy_(this.numBatchesTracked.add(1))));
    if (this.sync && this.training) return this.syncForward(x);
    return F.batchNorm(x, {
      weight: this.weight, bias: this.bias, runningMean: this.runningMean, runningVar: this.runningVar,
      training: this.training, momentum: this.opts.momentum ?? 0.1, eps: this.opts.eps ?? 1e-5,
    });
  }

  /**
   * One differentiable sum over the ranks of [Σx, Σx², n] per channel gives the global mean and
   * (biased) variance; its backward sums the two gradient terms over the ranks, as SyncBatchNorm's
   * backward does. Statistics in fp32 whatever the input's precision.
   */
  private syncForward(x: Tensor): Tensor {
    const [N, C, H, W] = x.shape;
    const eps = this.opts.eps ?? 1e-5;
    const momentum = this.opts.momentum ?? 0.1;
    const xf = x.dtype === 'float32' ? x : x.to('float32');
    const local = cat([xf.sum([0, 2, 3]), xf.square().sum([0, 2, 3]), tensor(new Float32Array(C).fill(N * H * W), [C]).to(xf.device)]);
    const total = allReduceSum(local);
    const count = total.narrow(0, 2 * C, C);
    const mean = total.narrow(0, 0, C).div(count);
    const variance = total.narrow(0, C, C).div(count).sub(mean.square());
    noGrad(() => tidy(() => {
      const n = count.data()[0] as number;
      const unbiased = variance.mul(n / Math.max(1, n - 1));
      this.runningMean.copy_(this.runningMean.mul(1 - momentum).add(mean.mul(momentum)));
      this.runningVar.copy_(this.runningVar.mul(1 - momentum).add(unbiased.mul(momentum)));
    }));
    const shape = [1, C, 1, 1];
    const scale = variance.add(eps).rsqrt().mul(this.weight).view(shape);
    const y = xf.sub(mean.view(shape)).mul(scale).add(this.bias.view(shape));
    return y.dtype === x.dtype ? y : y.to(x.dtype);
  }
}

/** PyTorch's SyncBatchNorm.convert_sync_batchnorm, in place: every BatchNorm2d of `module` synchronises its statistics. */
export function convertSyncBatchNorm(module: Module): number {
  let n = 0;
  for (const [, m] of module.namedModules()) if (m instanceof BatchNorm2d) { m.sync = true; n++; }
  return n;
}

export class GroupNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly numGroups: number, readonly numChannels: number, readonly eps = 1e-5) {
    super();
    if (numChannels % numGroups !== 0) throw new Error(`GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`);
    this.weight = this.registerParameter('weight', ones([numChannels]));
    this.bias = this.registerParameter('bias', zeros([numChannels]));
  }

  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

/** nn.ReLU; `inplace` overwrites its input, as PyTorch's nn.ReLU(inplace=True) (safe after a convolution or batch norm, whose backward does not read their output). */
export class ReLU extends Module {
  constructor(readonly opts: { inplace?: boolean } = {}) {
    super();
  }

  forward(x: Tensor): Tensor {
    return this.opts.inplace ? F.relu_(x) : F.relu(x);
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

/** A module with a single-tensor forward, the kind Sequential chains. */
export interface Layer extends Module {
  forward(x: Tensor): Tensor;
}

/** Children named "0", "1", … as in PyTorch, applied in order. */
export class Sequential extends Module {
  readonly layers: Layer[];
  constructor(...layers: Layer[]) {
    super();
    this.layers = layers.map((l, i) => this.registerModule(String(i), l));
  }
  /**
   * Each layer runs in its own tidy() and the previous layer's output is released once consumed, so
   * intermediates die as early as they would under Python's reference counting (autograd keeps its own
   * references to whatever backward needs). Holding them all until the end would raise peak memory
   * and, through fresh page faults, slow inference down by a third.
   */
  forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.layers) {
      const next = tidy(() => layer.forward(h));
      if (h !== x && h !== next) h.dispose();
      h = next;
    }
    return h;
  }
}

/** A list of child modules named "0", "1", …, without a forward of its own. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(modules: M[] = []) {
    super();
    for (const m of modules) this.append(m);
  }
  append(m: M): this {
    this.items.push(this.registerModule(String(this.items.length), m));
    return this;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    return this.items[i];
  }
}
