// Training budgets of `avap experiment --profile`. Every method of one experiment gets the same
// input size, batch, learning rate and schedule, optimiser steps, encoder and seed; a method with
// options of its own (AVAP's step 2) declares its values per profile in its descriptor.
import { EXPERIMENT_PROFILE_NAMES, ExperimentProfileName } from '../methods/descriptor';
import { methodDescriptors } from '../methods/registry';
import type { Schedule } from '../train/settings';

export { EXPERIMENT_PROFILE_NAMES };
export type { ExperimentProfileName };

export interface ExperimentProfile {
  size: number;
  batchSize: number;
  lr: number;
  schedule: Schedule;
  weightDecay: number;
  /** Optimiser steps of every method's main stage (AVAP: step 1). */
  steps: number;
  encoder: string;
  /** Every registered method's own options for this profile (each method takes the ones it declares). */
  methodOptions: Record<string, unknown>;
}

const SHARED_BUDGETS: Record<ExperimentProfileName, Omit<ExperimentProfile, 'methodOptions'>> = {
  /**
   * The paper's settings (section IV-B): 256², batch 8, Adam lr 1e-4 (constant), weight decay 1e-5,
   * ResNet34, 100 epochs of RIGA's 655 training images — 8200 steps.
   */
  full: { size: 256, batchSize: 8, lr: 1e-4, schedule: 'constant', weightDecay: 1e-5, steps: 8200, encoder: 'resnet34' },
  /**
   * A comparison on 2 CPU cores in about half an hour for the 13 rows of the default synthetic data
   * (30 training cases, 6 annotators): 64², ResNet18, Adam at 1e-3 decayed by the poly schedule.
   */
  quick: { size: 64, batchSize: 8, lr: 1e-3, schedule: 'poly', weightDecay: 1e-5, steps: 300, encoder: 'resnet18' },
};

/** A profile's shared budgets with every registered method's options for it. */
export function experimentProfile(name: ExperimentProfileName): ExperimentProfile {
  const methodOptions = Object.assign({}, ...methodDescriptors().map((d) => d.experimentProfiles?.[name] ?? {})) as Record<string, unknown>;
  return { ...SHARED_BUDGETS[name], methodOptions };
}
