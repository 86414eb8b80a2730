// Training budgets of `avap experiment --profile`. Every method of one experiment gets the same
// input size, batch, learning rate, epochs, encoder and seed.

export interface ExperimentProfile {
  size: number;
  batchSize: number;
  lr: number;
  /** AVAP only: learning rate of step 2 (a tiny head on a frozen backbone takes a larger one). */
  preferenceLr: number;
  weightDecay: number;
  /** Epochs of every method's backbone training (AVAP: step 1). */
  epochs: number;
  /** AVAP only: epochs of step 2 (the APM on the frozen backbone). */
  preferenceEpochs: number;
  encoder: 'resnet34' | 'resnet18';
}

export const EXPERIMENT_PROFILES: Record<'full' | 'quick', ExperimentProfile> = {
  /** The paper's settings (section IV-B): 256², batch 8, Adam lr 1e-4, weight decay 1e-5, ResNet34. */
  full: { size: 256, batchSize: 8, lr: 1e-4, preferenceLr: 1e-4, weightDecay: 1e-5, epochs: 100, preferenceEpochs: 50, encoder: 'resnet34' },
  /**
   * A comparison on 2 CPU cores in well under an hour for the 13 rows of the default synthetic data
   * (100 cases, 6 annotators): 64², ResNet18, and a higher learning rate so few epochs converge.
   * AVAP's step 2 gets as many epochs as step 1: an APM epoch on the frozen backbone costs about a
   * third of a backbone epoch, and with half as many the APM was still far from converged (measured
   * in docs/methods.md), and a 5× larger learning rate (as the demo: measured 73% against 65%
   * validation Average after the same epochs).
   */
  quick: { size: 64, batchSize: 8, lr: 1e-3, preferenceLr: 5e-3, weightDecay: 1e-5, epochs: 30, preferenceEpochs: 30, encoder: 'resnet18' },
};
