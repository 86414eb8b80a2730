// Training budgets of `avap experiment --profile`. Every method of one experiment gets the same
// input size, batch, learning rate and schedule, optimiser steps, encoder and seed; `methodOptions`
// set the options of the methods that have them (each method takes the ones it declares).

export interface ExperimentProfile {
  size: number;
  batchSize: number;
  lr: number;
  schedule: 'constant' | 'poly' | 'cosine';
  weightDecay: number;
  /** Optimiser steps of every method's main stage (AVAP: step 1). */
  steps: number;
  encoder: string;
  methodOptions: Record<string, unknown>;
}

export const EXPERIMENT_PROFILES: Record<'full' | 'quick', ExperimentProfile> = {
  /**
   * The paper's settings (section IV-B): 256², batch 8, Adam lr 1e-4 (constant), weight decay 1e-5,
   * ResNet34, 100 + 50 epochs of RIGA's 655 training images — 8200 + 4100 steps.
   */
  full: { size: 256, batchSize: 8, lr: 1e-4, schedule: 'constant', weightDecay: 1e-5, steps: 8200, encoder: 'resnet34', methodOptions: { preferenceSteps: 4100, preferenceLr: 1e-4 } },
  /**
   * A comparison on 2 CPU cores in about half an hour for the 13 rows of the default synthetic data
   * (30 training cases, 6 annotators): 64², ResNet18, Adam at 1e-3 decayed by the poly schedule.
   * AVAP's step 2 gets as many steps as step 1 (a step on the frozen backbone costs about a third of
   * a backbone step) and a 5× larger learning rate (measured: 73% against 65% validation Average
   * after the same budget).
   */
  quick: { size: 64, batchSize: 8, lr: 1e-3, schedule: 'poly', weightDecay: 1e-5, steps: 300, encoder: 'resnet18', methodOptions: { preferenceSteps: 300, preferenceLr: 5e-3 } },
};
