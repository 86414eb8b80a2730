import { UserError } from '../../errors';
import type { Precision } from '../precision';
import { Device, Tensor, keep, noGrad, tidy } from '../tensor';

export type StateDict = Record<string, Tensor>;

/**
 * PyTorch's nn.Module: named parameters, buffers and child modules, train/eval mode and state dicts
 * whose keys ("layer1.0.conv1.weight") equal PyTorch's, so weights exported from PyTorch load 1:1.
 * Children register explicitly (`this.conv1 = this.registerModule('conv1', new Conv2d(...))`) since
 * TypeScript has no __setattr__ hook.
 */
export class Module {
  training = true;
  /** The precision this module's convolutions compute in, for modules that honour it (see setPrecision). */
  precision: Precision = 'fp32';
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, Tensor | null>();
  private readonly children = new Map<string, Module>();

  /** A parameter lives until the module is disposed (it survives every tidy()) and requires grad. */
  protected registerParameter(name: string, value: Tensor): Tensor;
  protected registerParameter(name: string, value: Tensor | null): Tensor | null;
  protected registerParameter(name: string, value: Tensor | null): Tensor | null {
    this.assertFreeName(name);
    if (value) keep(value).requiresGrad_(true);
    this.params.set(name, value);
    return value;
  }

  protected registerBuffer(name: string, value: Tensor): Tensor;
  protected registerBuffer(name: string, value: Tensor | null): Tensor | null;
  protected registerBuffer(name: string, value: Tensor | null): Tensor | null {
    this.assertFreeName(name);
    if (value) keep(value);
    this.buffers.set(name, value);
    return value;
  }

  protected registerModule<M extends Module>(name: string, module: M): M {
    this.assertFreeName(name);
    this.children.set(name, module);
    return module;
  }

  private assertFreeName(name: string): void {
    if (name === '' || name.includes('.')) throw new Error(`Module: invalid name '${name}'`);
    if (this.params.has(name) || this.buffers.has(name) || this.children.has(name)) throw new Error(`Module: '${name}' is already registered`);
  }

  namedChildren(): [string, Module][] {
    return [...this.children.entries()];
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.children) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    return this.collect(prefix, (m) => m.params);
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    return this.collect(prefix, (m) => m.buffers);
  }

  private collect(prefix: string, pick: (m: Module) => Map<string, Tensor | null>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, module] of this.namedModules(prefix)) {
      for (const [name, t] of pick(module)) if (t) out.push([path ? `${path}.${name}` : name, t]);
    }
    return out;
  }

  /** Sets training mode here and in every descendant (batch norm and dropout behave differently). */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Sets the precision here and in every descendant, as train() sets the mode. A backbone or a head runs
   * its convolutions in it and returns float32; parameters stay float32 whatever it is.
   */
  setPrecision(precision: Precision): this {
    for (const [, m] of this.namedModules()) m.precision = precision;
    return this;
  }

  /**
   * Moves every parameter and buffer to `device` in place, as PyTorch's module.to(device): an optimizer
   * or anything else holding them keeps working with the moved tensors.
   */
  to(device: Device): this {
    noGrad(() => tidy(() => {
      for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) if (t.device !== device) t.setData_(t.to(device));
    }));
    return this;
  }

  /** Where this module's parameters live (the first one's device; 'cpu' for a module without any). */
  parameterDevice(): Device {
    return this.parameters()[0]?.device ?? 'cpu';
  }

  /** Freezes (false) or unfreezes (true) every parameter of this module. */
  requiresGrad_(value: boolean): this {
    for (const p of this.parameters()) p.requiresGrad_(value);
    return this;
  }

  /**
   * Parameters and buffers by their PyTorch names, in PyTorch's order (each module's parameters, then its
   * buffers, then its children's). The tensors are the live ones, not copies.
   */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [path, module] of this.namedModules()) {
      for (const store of [module.params, module.buffers]) {
        for (const [name, t] of store) if (t) out[path ? `${path}.${name}` : name] = t;
      }
    }
    return out;
  }

  /**
   * Copies values into this module's tensors in place (so optimizers keep their references).
   * strict: every key must match and shapes must agree; the error lists all missing keys,
   * unexpected keys and shape mismatches at once. Dtypes are converted as PyTorch's copy_ does.
   */
  loadStateDict(source: StateDict, opts: { strict?: boolean; source?: string } = {}): { missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in source));
    const unexpected = Object.keys(source).filter((k) => !(k in own));
    const mismatched = Object.keys(own)
      .filter((k) => k in source && !sameShape(own[k].shape, source[k].shape))
      .map((k) => `${k}: expected [${own[k].shape.join(', ')}], got [${source[k].shape.join(', ')}]`);
    if (mismatched.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
      const parts = [
        missing.length ? `missing keys (${missing.length}): ${abbreviate(missing)}` : '',
        unexpected.length ? `unexpected keys (${unexpected.length}): ${abbreviate(unexpected)}` : '',
        mismatched.length ? `shape mismatches (${mismatched.length}): ${abbreviate(mismatched)}` : '',
      ].filter(Boolean);
      throw new UserError(`${opts.source ? `${opts.source}: ` : ''}cannot load state dict: ${parts.join('; ')}`);
    }
    noGrad(() => tidy(() => {
      for (const [k, t] of Object.entries(own)) if (k in source) t.copy_(source[k]);
    }));
    return { missing, unexpected };
  }

  /** Frees every parameter and buffer of this module tree. */
  dispose(): void {
    for (const t of Object.values(this.stateDict())) t.dispose();
  }

  parameterCount(): number {
    return this.parameters().reduce((n, p) => n + p.numel(), 0);
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function abbreviate(items: string[]): string {
  return items.length <= 8 ? items.join(', ') : `${items.slice(0, 8).join(', ')}, … (${items.length - 8} more)`;
}
