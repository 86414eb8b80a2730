// AVAP as a trainable method: the two-step strategy of section III-E (step 1 backbone + AVM, step 2 the
// APM alone with a random annotator per sample), or the joint weighted loss of Table V.
import { z } from 'zod';
import { UserError } from '../errors';
import type { TrainingStatistics } from '../data/statistics';
import { AVAP, AvapConfig } from '../models/avap';
import { F, Tensor, manualSeed, tidy } from '../torch';
import { softDice } from '../metrics/dice';
import { DynamicHead } from '../models/heads/preference';
import { GATE_CANDIDATES } from '../models/heads/preferenceGate';
import { preferenceLoss, variationLoss } from './losses';
import { Rng } from '../util/random';
import { chosenRows, pickAnnotators, pickRows } from './annotators';
import { avapAblations } from './avapAblations';
import { backboneFor, backboneSchema } from './baseline';
import { MethodDescriptor } from './descriptor';
import { Method, MethodConfig, Prediction, Stage, StagePlan, TrainingBatch, ValidationPrediction } from './method';
import { AnnotatorLayout } from '../data/layout';

export interface AvapTraining {
  /** 'two-step' (the paper's) or 'joint' with one weighted loss (Table V). */
  strategy: 'two-step' | 'joint';
  /** Optimiser steps of step 1 (backbone + AVM) and step 2 (APM); joint training uses variationSteps. */
  variationSteps: number;
  preferenceSteps: number;
  /** Joint only: one weight per AVM branch (structure), then the APM's weight. */
  jointWeights?: number[];
  /** Learning rate of step 2 (a tiny head on a frozen backbone converges faster with a larger one); default the run's. */
  preferenceLr?: number;
  /**
   * Two-step only: folds of the training cases over which step 2 is cross-fitted to choose each
   * annotator's gate (0: no gate, every annotator keeps the APM's full departure, as in the paper).
   */
  preferenceFolds: number;
}

export type AvapMethodConfig = MethodConfig & AvapConfig & { method: 'avap'; training: AvapTraining };

/** AVAP's config (runs written when budgets were epochs are migrated when read: src/train/run.ts). */
const schema = z.object({
  method: z.literal('avap'),
  structures: z.array(z.string()).min(1),
  annotators: z.array(z.string()).min(1),
  backbone: backboneSchema,
  avm: z.object({ hidden: z.number().int().positive(), calibration: z.enum(['expectation', 'argmax']) }),
  apm: z.object({ hidden: z.number().int().positive(), conditioning: z.enum(['both', 'code', 'features']) }),
  training: z.object({
    strategy: z.enum(['two-step', 'joint']),
    variationSteps: z.number().int().nonnegative(),
    preferenceSteps: z.number().int().nonnegative(),
    jointWeights: z.array(z.number().nonnegative()).optional(),
    preferenceLr: z.number().positive().optional(),
    preferenceFolds: z.number().int().nonnegative(),
  }),
}).superRefine((c, ctx) => {
  const K = c.structures.length;
  if (c.training.jointWeights && c.training.jointWeights.length !== K + 1) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['training', 'jointWeights'], message: `expected ${K + 1} values (one per structure, then the APM), got ${c.training.jointWeights.length}` });
  }
});

/**
 * Step 2's learning rate relative to step 1's, unless --preference-lr says otherwise: a small head on
 * a frozen backbone converges faster at a larger rate (measured on the synthetic data: 73% against
 * 65% validation Average after the same budget at 5× against 1×).
 */
const PREFERENCE_LR_FACTOR = 5;

/**
 * Cross-fitting folds of step 2 by default: two is the fewest that scores every training image held
 * out once, and costs two extra step-2 trainings (each on half the images, with step 2's budget).
 */
const PREFERENCE_FOLDS = 2;

/** Hidden widths of the heads (the paper's AVM: 32, the APM's dynamic convolutions: 8, as DoDNet). */
const AVM_HIDDEN = 32;
const APM_HIDDEN = 8;

export class AvapMethod implements Method {
  readonly name = 'avap';
  readonly model: AVAP;

  constructor(readonly config: AvapMethodConfig) {
    const { method, training, ...model } = config;
    void method;
    void training;
    this.model = new AVAP(model);
  }

  get encoder() {
    return this.model.backbone.encoder;
  }

  get training(): AvapTraining {
    return this.config.training;
  }

  stages(): Stage[] {
    const m = this.model;
    if (this.training.strategy === 'joint') {
      const [joint] = avap.plan(this.config);
      return [{ ...joint, trained: [m], frozen: [], loss: (batch, rng) => this.jointLoss(batch, rng) }];
    }
    const [variation, ...preference] = avap.plan(this.config);
    const crossFitted = this.training.preferenceFolds > 0;
    return [
      { ...variation, trained: [m.backbone, m.avm], frozen: [m.apm, m.gate], loss: (batch) => this.variationLoss(batch) },
      ...preference.map((plan): Stage => ({
        ...plan, trained: [m.apm], frozen: [m.backbone, m.avm, m.gate], loss: (batch, rng) => this.preferenceLoss(batch, rng),
        ...(crossFitted ? { begin: (seed: number) => this.resetPreferenceHead(seed) } : {}),
        ...(plan.crossFit ? { heldOut: (batch: TrainingBatch) => this.scoreGateCandidates(batch) } : {}),
        ...(crossFitted && !plan.crossFit ? { end: () => this.chooseGate() } : {}),
      })),
    ];
  }

  /**
   * Each step-2 training (every fold's and the final one) starts from the same fresh APM, so a fold's
   * held-out score measures the head the final training produces, not one that saw other images.
   */
  private resetPreferenceHead(seed: number): void {
    manualSeed(Rng.from(seed, 'apm-init').int(2 ** 31));
    const fresh = new DynamicHead(this.model.apm.opts);
    try {
      this.model.apm.loadStateDict(fresh.stateDict());
    } finally {
      fresh.dispose();
    }
  }

  /** Held-out soft Dice of every gate candidate against each annotator's masks, added to the gate's sums. */
  private scoreGateCandidates(batch: TrainingBatch): void {
    const M = this.config.annotators.length;
    const K = this.config.structures.length;
    const G = GATE_CANDIDATES.length;
    const { consensus, departures } = this.model.departures(batch.images);
    const maps = this.model.gate.candidates(consensus, departures).map((l) => F.sigmoid(l).data() as Float32Array);
    const masks = batch.annotatorMasks.data() as Float32Array;
    const layout = new AnnotatorLayout(M, K, masks.length / (batch.size * M * K));
    // Sums per (candidate, annotator, structure) and case counts per (annotator, structure).
    const table = new AnnotatorLayout(M, K);
    const diceSums = new Float64Array(G * M * K);
    const cases = new Float64Array(M * K);
    for (let b = 0; b < batch.size; b++) {
      for (let m = 0; m < M; m++) {
        if (!batch.available[layout.slot(b, m)]) continue;
        for (let k = 0; k < K; k++) {
          const target = layout.map(masks, b, m, k);
          cases[table.offset(0, m, k)]++;
          maps.forEach((map, g) => { diceSums[table.offset(g, m, k)] += softDice(layout.map(map, b, m, k), target); });
        }
      }
    }
    this.model.gate.addHeldOut(diceSums, cases);
  }

  /** After the final step 2: each annotator's gate from the held-out scores; a line saying what was chosen. */
  private chooseGate(): string {
    const chosen = this.model.gate.choose();
    const means = this.model.gate.heldOutMeans();
    const { annotators, structures } = this.config;
    const table = new AnnotatorLayout(annotators.length, structures.length);
    const parts = annotators.map((a, m) => `${a} ${structures.map((st, k) => {
      const g = chosen[table.offset(0, m, k)];
      const c = GATE_CANDIDATES[g];
      const name = c.common === 0 ? 'consensus' : c.own === 0 ? 'common' : `own×${c.own}`;
      const held = means[g][m][k];
      return `${st} ${name}${held === null ? '' : ` (${(100 * held).toFixed(1)} vs consensus ${(100 * means[0][m][k]!).toFixed(1)})`}`;
    }).join(', ')}`);
    return `preference gate from held-out folds: ${parts.join('; ')}`;
  }

  /** Step 1: the AVM of every structure against the agreement counts and the mean vote. */
  private variationLoss(batch: TrainingBatch): Tensor {
    return tidy(() => sum(this.variationTerms(this.model.forward(batch.images).variation, batch)));
  }

  /** Step 2: the APM, each sample for one of its annotators drawn at random. */
  private preferenceLoss(batch: TrainingBatch, rng: Rng): Tensor {
    return tidy(() => {
      const chosen = pickAnnotators(batch, this.config.annotators.length, rng);
      const out = this.model.forward(batch.images, chosen.map((k) => [k]));
      return this.preferenceTerm(out.preference!, batch, chosen);
    });
  }

  /** Table V: both heads at once, one weight per AVM branch and one for the APM. */
  private jointLoss(batch: TrainingBatch, rng: Rng): Tensor {
    return tidy(() => {
      const K = this.config.structures.length;
      const chosen = pickAnnotators(batch, this.config.annotators.length, rng);
      const out = this.model.forward(batch.images, chosen.map((k) => [k]));
      const avm = this.variationTerms(out.variation, batch);
      const apm = this.preferenceTerm(out.preference!, batch, chosen);
      const w = this.training.jointWeights ?? Array(K + 1).fill(1 / (K + 1));
      return sum([...avm.map((l, s) => l.mul(w[s])), apm.mul(w[K])]);
    });
  }

  private variationTerms(logits: Tensor[], batch: TrainingBatch): Tensor[] {
    const M = this.config.annotators.length;
    return logits.map((l, s) => variationLoss(l, batch.agreementClasses.select(1, s), batch.meanVotes.select(1, s), M));
  }

  /** Each sample's target is its chosen annotator's masks, gathered as [B, K, S, S]. */
  private preferenceTerm(logits: Tensor, batch: TrainingBatch, chosen: number[]): Tensor {
    const masks = pickRows(batch.annotatorMasks, chosenRows(chosen, this.config.annotators.length));
    return preferenceLoss(logits.squeeze(1), masks);
  }

  /** The AVM starts from the training set's agreement-class frequencies (see VariationBranch.initializePrior). */
  initialize(statistics: TrainingStatistics): void {
    this.model.avm.initializePrior(statistics.agreementHistogram);
  }

  predict(images: Tensor): Prediction {
    return this.predictAnnotators(images);
  }

  /** The dynamic head runs only for these annotators (default every one), in one grouped convolution. */
  predictAnnotators(images: Tensor, annotators?: number[]): Prediction {
    const { calibrated, annotators: maps } = this.model.predict(images, undefined, annotators);
    return { calibrated, annotators: maps };
  }

  /** Both calibration rules from one pass, so validation shows which one the data favours. */
  predictForValidation(images: Tensor): ValidationPrediction {
    const p = this.model.predictBothCalibrations(images);
    const calibrated = this.config.avm.calibration === 'argmax' ? p.argmax : p.expectation;
    return { calibrated, annotators: p.annotators, alternatives: { calibration: { expectation: p.expectation, argmax: p.argmax } } };
  }
}

function sum(terms: Tensor[]): Tensor {
  return terms.reduce((a, b) => a.add(b));
}

export const avap: MethodDescriptor<AvapMethodConfig> = {
  name: 'avap',
  label: 'AVAP',
  description: 'AVAP: ResNet34 U-Net + annotator variation (AVM) + annotator preference (APM) heads, two-step training',
  schema: schema as unknown as z.ZodType<AvapMethodConfig, z.ZodTypeDef, unknown>,
  /**
   * Full: the paper's 50 epochs of step 2 at the base rate (4100 steps of 655 images). Quick: step 2
   * gets as many steps as step 1 (a step on the frozen backbone costs about a third of a backbone
   * step) and a 5× larger learning rate (measured: 73% against 65% validation Average after the same
   * budget).
   */
  experimentProfiles: {
    full: { preferenceSteps: 4100, preferenceLr: 1e-4 },
    quick: { preferenceSteps: 300, preferenceLr: 5e-3 },
  },
  options: [
    { key: 'preferenceSteps', flag: '--preference-steps', description: 'AVAP: optimiser steps of step 2 (the APM on the frozen backbone)', value: { type: 'int', min: 0 }, defaultText: 'half of --steps', stageSteps: true },
    { key: 'preferenceLr', flag: '--preference-lr', description: 'AVAP: learning rate of step 2 (the APM alone on the frozen backbone)', value: { type: 'number', min: 1e-12, max: 10 }, defaultText: `${PREFERENCE_LR_FACTOR} × --lr` },
    { key: 'preferenceFolds', flag: '--preference-folds', description: "AVAP: folds of the training cases over which step 2 is cross-fitted to choose how far each annotator's map departs from the consensus (0: no gate, the paper's head)", value: { type: 'int', min: 0, max: 10 }, default: PREFERENCE_FOLDS },
    { key: 'strategy', flag: '--strategy', description: "AVAP: 'two-step' (the paper's) or 'joint' (Table V)", value: { type: 'choice', choices: ['two-step', 'joint'] }, default: 'two-step' },
    { key: 'jointWeights', flag: '--joint-weights', description: 'AVAP, joint strategy: one loss weight per structure, then the APM weight, e.g. 0.2,0.2,0.6', value: { type: 'numbers' } },
    { key: 'conditioning', flag: '--conditioning', description: "AVAP: what the APM controller sees: 'both', 'code' or 'features' (Table IV)", value: { type: 'choice', choices: ['both', 'code', 'features'] }, default: 'both' },
    { key: 'calibration', flag: '--calibration', description: "AVAP: the AVM's calibrated map, 'expectation' (Σ c·p_c / M) or 'argmax' (argmax / M)", value: { type: 'choice', choices: ['expectation', 'argmax'] }, default: 'expectation' },
  ],
  configure(context, o) {
    const K = context.structures.length;
    const jointWeights = o.jointWeights as number[] | undefined;
    if (o.strategy === 'two-step' && o.preferenceSteps === 0) throw new UserError('--preference-steps 0 would leave the preference head (APM) untrained; give it at least 1 step');
    if (jointWeights && o.strategy !== 'joint') throw new UserError(`--joint-weights only applies to --strategy joint (got --strategy ${o.strategy})`);
    if (jointWeights && jointWeights.every((w) => w === 0)) throw new UserError(`--joint-weights: weights must not all be zero, got '${jointWeights.join(',')}'`);
    if (jointWeights && jointWeights.length !== K + 1) {
      throw new UserError(`--joint-weights: expected ${K + 1} values (one per structure: ${context.structures.join(', ')}; then the APM's), got ${jointWeights.length}: '${jointWeights.join(',')}'`);
    }
    return {
      method: 'avap',
      structures: context.structures,
      annotators: context.annotators,
      backbone: backboneFor(context),
      avm: { hidden: AVM_HIDDEN, calibration: o.calibration as AvapConfig['avm']['calibration'] },
      apm: { hidden: APM_HIDDEN, conditioning: o.conditioning as AvapConfig['apm']['conditioning'] },
      training: {
        strategy: o.strategy as AvapTraining['strategy'],
        variationSteps: context.steps,
        preferenceSteps: (o.preferenceSteps as number | undefined) ?? Math.max(1, Math.round(context.steps / 2)),
        ...(jointWeights ? { jointWeights } : {}),
        ...(o.preferenceLr !== undefined ? { preferenceLr: o.preferenceLr as number } : {}),
        preferenceFolds: o.strategy === 'joint' ? 0 : o.preferenceFolds as number,
      },
    };
  },
  plan(config): StagePlan[] {
    const t = config.training;
    if (t.strategy === 'joint') return [{ name: 'joint', steps: t.variationSteps, select: 'mean_of_mean_voting_and_average' }];
    const preference: StagePlan = { name: 'preference', steps: t.preferenceSteps, select: 'average', ...(t.preferenceLr !== undefined ? { lr: t.preferenceLr } : { lrFactor: PREFERENCE_LR_FACTOR }) };
    const folds = Array.from({ length: t.preferenceFolds }, (_, fold): StagePlan => ({
      ...preference, name: `preference-fold${fold + 1}`, crossFit: { fold, folds: t.preferenceFolds },
    }));
    return [{ name: 'variation', steps: t.variationSteps, select: 'mean_voting' }, ...folds, preference];
  },
  build: (config) => new AvapMethod(config),
  describeSettings: (o) => {
    const folds = (o.preferenceFolds as number | undefined) ?? PREFERENCE_FOLDS;
    return `AVAP step 2: ${o.preferenceSteps ?? 'half as many'} steps at lr ${o.preferenceLr ?? `${PREFERENCE_LR_FACTOR} × lr`}`
      + (folds > 0 ? `, gate cross-fitted over ${folds} folds` : ', no gate');
  },
  ablations: avapAblations,
};
