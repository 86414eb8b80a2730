// Which runs an experiment trains: one per row of Table II (a family such as `single` expanded to
// M1..MM), plus, with --ablations, each method's ablation study. Everything about a method — its label,
// its stages, its options — comes from its descriptor.
import { AblationRun, AnyMethodDescriptor, MethodContext, optionsFor, resolveOptions } from '../methods/descriptor';
import { expandMethods, methodDescriptors, methodIdentity, resolveMethod } from '../methods/registry';

export interface PlannedRun {
  /** Unique within the experiment: 'single:2', 'mv-unet', 'avap', 'avap@code', … */
  id: string;
  /** Folder name under OUT/runs and OUT/eval (no ':' so it is portable). */
  folder: string;
  /** Row label in the tables: 'M2', 'MV-UNet', 'AVAP', … */
  label: string;
  /** `--method` for the trainer. */
  method: string;
  /** Training settings this run sets on top of the experiment's. */
  overrides: AblationRun['overrides'];
  /** Optimiser steps of each training stage, for progress and ETA. */
  stageSteps: number[];
}

export interface AblationPlannedRun extends PlannedRun {
  /** The table of its method's study it belongs to ('III', 'IV', …). */
  table: string;
  /** The method whose study it is. */
  study: string;
}

/** What a plan is made for: the dataset's shape, the shared settings, and every method option the experiment sets. */
export interface PlanContext extends MethodContext {
  options: Record<string, unknown>;
}

/** The stages a run would train, from the config it would write. */
function stageSteps(descriptor: AnyMethodDescriptor, variantOptions: Record<string, unknown>, context: PlanContext, overrides: PlannedRun['overrides']): number[] {
  const options = { ...optionsFor(descriptor, context.options), ...overrides.methodOptions };
  const config = descriptor.configure({ ...context, steps: overrides.steps ?? context.steps }, { ...resolveOptions(descriptor, options), ...variantOptions });
  return descriptor.plan(config).map((s) => s.steps);
}

/**
 * `--methods` names → runs in Table II's row order (the registry's, a family by member) whatever the
 * order given, validated against the dataset's M (unknown names are a UserError).
 */
export function planMethods(names: string[], context: PlanContext): PlannedRun[] {
  const M = context.annotators.length;
  const runs: PlannedRun[] = [];
  const rank = new Map<string, number>();
  for (const id of expandMethods(names, M)) {
    const { descriptor, variantOptions } = resolveMethod(id, M, '--methods');
    if (runs.some((r) => r.id === id)) continue;
    const options = { ...resolveOptions(descriptor, optionsFor(descriptor, context.options)), ...variantOptions };
    const config = descriptor.configure(context, options);
    const member = descriptor.variants ? descriptor.variants.expand(M).indexOf(id) : 0;
    runs.push({ id, folder: id.replace(':', '-'), label: methodIdentity(config).label, method: id, overrides: {}, stageSteps: descriptor.plan(config).map((s) => s.steps) });
    rank.set(id, methodDescriptors().indexOf(descriptor) * 1e6 + member);
  }
  return runs.sort((a, b) => rank.get(a.id)! - rank.get(b.id)!);
}

/** The ablation runs of every method that has an ablation study (the paper: AVAP's Tables III–V). */
export function planAblations(context: PlanContext, pretrained: boolean): AblationPlannedRun[] {
  return methodDescriptors().filter((d) => d.ablations).flatMap((d) => {
    const ctx = { structures: context.structures.length, steps: context.steps, options: optionsFor(d, context.options), pretrained };
    return d.ablations!.plan(ctx).map((a): AblationPlannedRun => ({
      id: a.id, folder: a.folder, label: a.label, method: d.name, overrides: a.overrides, table: a.table, study: d.name,
      stageSteps: stageSteps(d, {}, context, a.overrides),
    }));
  });
}
