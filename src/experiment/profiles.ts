// Training budgets of `avap experiment --profile`. Every method of one experiment gets the same
// input size, batch, learning rate, epochs, encoder and seed; `methodOptions` set the options of the
// methods that have them (each method takes the ones it declares).

export interface ExperimentProfile {
  size: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  /** Epochs of every method's main stage (AVAP: step 1). */
  epochs: number;
  encoder: string;
  methodOptions: Record<string, unknown>;
}

export const EXPERIMENT_PROFILES: Record<'full' | 'quick', ExperimentProfile> = {
  /** The paper's settings (section IV-B): 256², batch 8, Adam lr 1e-4, weight decay 1e-5, ResNet34, 100 + 50 epochs. */
  full: { size: 256, batchSize: 8, lr: 1e-4, weightDecay: 1e-5, epochs: 100, encoder: 'resnet34', methodOptions: { preferenceEpochs: 50, preferenceLr: 1e-4 } },
  /**
   * A comparison on 2 CPU cores in well under an hour for the 13 rows of the default synthetic data
   * (100 cases, 6 annotators): 64², ResNet18, and a higher learning rate so few epochs converge.
   * AVAP's step 2 gets as many epochs as step 1: an APM epoch on the frozen backbone costs about a
   * third of a backbone epoch, and with half as many the APM was still far from converged (measured
   * in docs/methods.md), and a 5× larger learning rate (as the demo: measured 73% against 65%
   * validation Average after the same epochs).
   */
  quick: { size: 64, batchSize: 8, lr: 1e-3, weightDecay: 1e-5, epochs: 30, encoder: 'resnet18', methodOptions: { preferenceEpochs: 30, preferenceLr: 5e-3 } },
};
