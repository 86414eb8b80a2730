// The aggregation over cases that `avap evaluate` reports and training validation selects epochs by:
// per structure, each metric's mean over the cases where it is defined; Average is the mean of the
// per-annotator columns (as the paper's Table II), each over the cases that annotator annotated.
import { NanMeanAccumulator, nanMean } from './accumulator';
import { CaseStructureMetrics } from './caseMetrics';

/** One structure's metrics over all cases (NaN = never defined). */
export interface StructureAggregate {
  meanVoting: number;
  perAnnotator: number[];
  average: number;
  cross: number[][];
  ged: number;
  ece: number;
  hardDice: number;
  iou: number;
  identifiedPerAnnotator: number[];
  identifiability: number;
}

export class StructureAccumulator {
  /** mean voting, GED, ECE, hard Dice, IoU. */
  private readonly scalars = new NanMeanAccumulator(5);
  private readonly perAnnotator: NanMeanAccumulator;
  private readonly identified: NanMeanAccumulator;
  private readonly cross: NanMeanAccumulator;

  constructor(readonly annotators: number) {
    this.perAnnotator = new NanMeanAccumulator(annotators);
    this.identified = new NanMeanAccumulator(annotators);
    this.cross = new NanMeanAccumulator(annotators * annotators);
  }

  add(m: CaseStructureMetrics): this {
    this.scalars.add([m.meanVoting, m.ged, m.ece, m.hardDice, m.iou]);
    this.perAnnotator.add(m.perAnnotator);
    this.identified.add(m.identified);
    this.cross.add(m.cross.flat());
    return this;
  }

  aggregate(): StructureAggregate {
    const M = this.annotators;
    const [meanVoting, ged, ece, hardDice, iou] = this.scalars.aggregate();
    const perAnnotator = this.perAnnotator.aggregate();
    const identifiedPerAnnotator = this.identified.aggregate();
    const cross = this.cross.aggregate();
    return {
      meanVoting, perAnnotator, average: nanMean(perAnnotator),
      cross: Array.from({ length: M }, (_, i) => cross.slice(i * M, (i + 1) * M)),
      ged, ece, hardDice, iou, identifiedPerAnnotator, identifiability: nanMean(identifiedPerAnnotator),
    };
  }
}
