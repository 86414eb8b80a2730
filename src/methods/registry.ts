// The methods `avap train --method`, `avap experiment --methods` and config.json know, in the row order
// of the paper's Table II. Adding a method is one file exporting its descriptor and one line here (or a
// `registerMethod` call from outside).
import { UserError } from '../errors';
import { avap } from './avap';
import { cmNet } from './cmNet';
import { AnyMethodDescriptor, MethodContext, resolveOptions } from './descriptor';
import { lsUnet } from './lsUnet';
import { Method, MethodConfig } from './method';
import { mhUnet } from './mhUnet';
import { mrNet } from './mrNet';
import { mvUnet } from './mvUnet';
import { padl } from './padl';
import { single } from './single';

const REGISTRY: AnyMethodDescriptor[] = [single, mhUnet, mvUnet, lsUnet, cmNet, mrNet, padl, avap];

/** Adds a method (after the built-in ones, so after them in Table II). Its name and flags must be new. */
export function registerMethod(descriptor: AnyMethodDescriptor): void {
  if (REGISTRY.some((d) => d.name === descriptor.name)) throw new Error(`registerMethod: a method named '${descriptor.name}' exists already`);
  const flags = new Set(REGISTRY.flatMap((d) => (d.options ?? []).map((o) => o.flag)));
  for (const o of descriptor.options ?? []) if (flags.has(o.flag)) throw new Error(`registerMethod: ${descriptor.name}'s option ${o.flag} is another method's flag`);
  REGISTRY.push(descriptor);
}

/** Every registered method, in Table II's order. */
export function methodDescriptors(): readonly AnyMethodDescriptor[] {
  return REGISTRY;
}

/** How `--method` spells each method: single:K, mh-unet, …, avap. */
export function methodUsages(): string[] {
  return REGISTRY.map((d) => d.variants?.usage ?? d.name);
}

/** What `avap experiment` runs without --methods: every method (a family such as `single` by its name). */
export function defaultMethods(): string[] {
  return REGISTRY.map((d) => d.name);
}

/** A method id (`mv-unet`, `single:3`) → its descriptor and the options its argument sets (single:3 → annotator 3). */
export function resolveMethod(id: string, annotators?: number, flag = '--method'): { descriptor: AnyMethodDescriptor; variantOptions: Record<string, unknown> } {
  const colon = id.indexOf(':');
  const name = colon < 0 ? id : id.slice(0, colon);
  const descriptor = REGISTRY.find((d) => d.name === name);
  if (!descriptor || (colon >= 0 && !descriptor.variants)) throw new UserError(`${flag}: unknown method '${id}' (known: ${methodUsages().join(', ')})`);
  const variantOptions = descriptor.variants ? descriptor.variants.parse(colon < 0 ? null : id.slice(colon + 1), id, annotators, flag) : {};
  return { descriptor, variantOptions };
}

/** The ids `names` stand for on a dataset of M annotators (a family's name expands to all its members). */
export function expandMethods(names: string[], annotators: number): string[] {
  return names.flatMap((name) => REGISTRY.find((d) => d.name === name)?.variants?.expand(annotators) ?? [name]);
}

/** The descriptor that wrote a config. */
export function descriptorOf(config: { method: string }): AnyMethodDescriptor {
  const d = REGISTRY.find((x) => x.name === config.method);
  if (!d) throw new UserError(`unknown method '${config.method}' (known: ${REGISTRY.map((x) => x.name).join(', ')})`);
  return d;
}

/** The config of a new run of method `id`; `options` are the method's hyperparameters (its descriptor's options). */
export function methodConfigFor(id: string, context: MethodContext, options: Record<string, unknown> = {}): MethodConfig {
  const { descriptor, variantOptions } = resolveMethod(id, context.annotators.length);
  return descriptor.configure(context, { ...resolveOptions(descriptor, options), ...variantOptions });
}

/** The run id and Table II label of a config (`single:2` and 'M2', or the method's name and label). */
export function methodIdentity(config: MethodConfig): { id: string; label: string } {
  const d = descriptorOf(config);
  return d.variants ? { id: d.variants.id(config), label: d.variants.label(config) } : { id: d.name, label: d.label };
}

/** Builds the method (and its freshly initialised model) a config describes. */
export function buildMethod(config: MethodConfig): Method {
  return descriptorOf(config).build(config);
}

export function parseMethodConfig(value: unknown, source: string): MethodConfig {
  const name = (value as { method?: unknown } | null)?.method;
  const descriptor = typeof name === 'string' ? REGISTRY.find((d) => d.name === name) : undefined;
  if (!descriptor) throw new UserError(`${source}: invalid model config at 'method': expected one of ${REGISTRY.map((d) => d.name).join(', ')}, got ${JSON.stringify(name)}`);
  const r = descriptor.schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(`${source}: invalid model config at '${issue.path.join('.')}': ${issue.message}`);
  }
  return r.data;
}
