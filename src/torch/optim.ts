// libtorch's optimizers. Schedules (src/train/schedule.ts) compute a learning rate and call setLr().
import { native } from './native';
import { Tensor } from './tensor';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class Optimizer {
  private readonly native: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  private currentLr: number;

  protected constructor(kind: 'adam' | 'adamw' | 'sgd', params: Tensor[], options: Record<string, number | boolean>) {
    if (params.length === 0) throw new Error(`${kind}: no parameters to optimise`);
    const lr = options.lr as number;
    if (!(lr > 0)) throw new Error(`${kind}: lr must be positive, got ${lr}`);
    this.native = new native.NativeOptimizer(kind, params.map((p) => p.handle), options);
    this.currentLr = lr;
  }

  step(): void {
    this.native.step();
  }

  /** Drops the gradients of every parameter (PyTorch 2's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    this.native.zeroGrad();
  }

  get lr(): number {
    return this.currentLr;
  }

  setLr(lr: number): void {
    if (!(lr >= 0)) throw new Error(`setLr: lr must be >= 0, got ${lr}`);
    this.native.setLr(lr);
    this.currentLr = lr;
  }

  /** The optimiser's state (moments, step counts) as libtorch archive bytes, for checkpoints. */
  stateBytes(): Buffer {
    return this.native.save();
  }

  loadState(bytes: Uint8Array): void {
    this.native.load(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }
}

export class Adam extends Optimizer {
  constructor(params: Tensor[], o: AdamOptions = {}) {
    super('adam', params, adamOptions(o, 0));
  }
}

/** Adam with decoupled weight decay (Loshchilov & Hutter); PyTorch's default decay 1e-2. */
export class AdamW extends Optimizer {
  constructor(params: Tensor[], o: AdamOptions = {}) {
    super('adamw', params, adamOptions(o, 1e-2));
  }
}

export class SGD extends Optimizer {
  constructor(params: Tensor[], o: SGDOptions = {}) {
    if (o.nesterov && !((o.momentum ?? 0) > 0 && (o.dampening ?? 0) === 0)) throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
    super('sgd', params, { lr: o.lr ?? 1e-2, momentum: o.momentum ?? 0, dampening: o.dampening ?? 0, weightDecay: o.weightDecay ?? 0, nesterov: o.nesterov ?? false });
  }
}

function adamOptions(o: AdamOptions, defaultDecay: number): Record<string, number | boolean> {
  const [beta1, beta2] = o.betas ?? [0.9, 0.999];
  return { lr: o.lr ?? 1e-3, beta1, beta2, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? defaultDecay, amsgrad: o.amsgrad ?? false };
}
