// How far each annotator's map may depart from the consensus. The preference head (APM) learns every
// annotator's departure from the AVM's consensus on a few dozen training images; where an annotator's
// departures are mostly per-image noise rather than a consistent style, the head fits that noise and
// predicts the annotator worse than the consensus does. The gate shrinks each annotator's departure
// towards the annotators' common one, by an amount chosen on images the head was not trained on
// (cross-fitting: see AvapMethod), like a random-effects estimate that keeps an annotator's own effect
// only as far as held-out data supports it.
import { Tensor, nn, ones, tensor, tidy, zeros } from '../../torch';

/**
 * The maps the gate chooses between, as weights of (the common departure, the annotator's own
 * departure from it) on top of the consensus logit; the first is the consensus itself. On a tie the
 * earlier, more conservative candidate wins.
 */
export const GATE_CANDIDATES: readonly { common: number; own: number }[] = Object.freeze([
  { common: 0, own: 0 },
  { common: 1, own: 0 },
  { common: 1, own: 0.25 },
  { common: 1, own: 0.5 },
  { common: 1, own: 0.75 },
  { common: 1, own: 1 },
]);

export class PreferenceGate extends nn.Module {
  /** [M, K]: weight of the annotators' common departure (mean over annotators of the APM's output). */
  readonly common: Tensor;
  /** [M, K]: weight of annotator m's own departure from the common one. */
  readonly own: Tensor;
  /** [candidates, M, K]: sum over held-out cases of each candidate's soft Dice against annotator m. */
  readonly heldOutDice: Tensor;
  /** [M, K]: held-out cases scored per annotator and structure. */
  readonly heldOutCases: Tensor;

  constructor(readonly annotators: number, readonly structures: number) {
    super();
    const G = GATE_CANDIDATES.length;
    // Until a gate is chosen every annotator keeps the APM's full departure (the paper's head).
    this.common = this.registerBuffer('common', ones([annotators, structures]));
    this.own = this.registerBuffer('own', ones([annotators, structures]));
    this.heldOutDice = this.registerBuffer('held_out_dice', zeros([G, annotators, structures]));
    this.heldOutCases = this.registerBuffer('held_out_cases', zeros([annotators, structures]));
  }

  /** True while every annotator keeps its full departure: then no annotator's map needs the others'. */
  isIdentity(): boolean {
    const c = this.common.data() as Float32Array;
    const o = this.own.data() as Float32Array;
    return c.every((v) => v === 1) && o.every((v) => v === 1);
  }

  /**
   * Per-annotator logits [B, M, K, H, W] from the consensus logit [B, 1, K, H, W] and the APM's
   * departures of all M annotators [B, M, K, H, W].
   */
  forward(consensus: Tensor, departures: Tensor): Tensor {
    const [M, K] = [this.annotators, this.structures];
    return mix(consensus, departures, this.common.view([1, M, K, 1, 1]), this.own.view([1, M, K, 1, 1]));
  }

  /** Every candidate's logits, [G, B, M, K, H, W], for scoring them on held-out cases. */
  candidates(consensus: Tensor, departures: Tensor): Tensor[] {
    return GATE_CANDIDATES.map((c) => mix(consensus, departures, c.common, c.own));
  }

  /** Adds held-out soft Dice sums ([G·M·K], candidate-major) and case counts ([M·K]). */
  addHeldOut(diceSums: Float64Array, cases: Float64Array): void {
    const G = GATE_CANDIDATES.length;
    const [M, K] = [this.annotators, this.structures];
    tidy(() => {
      this.heldOutDice.copy_(this.heldOutDice.add(tensor(Float32Array.from(diceSums), [G, M, K]).to(this.heldOutDice.device)));
      this.heldOutCases.copy_(this.heldOutCases.add(tensor(Float32Array.from(cases), [M, K]).to(this.heldOutCases.device)));
    });
  }

  /**
   * Chooses, per annotator and structure, the candidate with the best mean held-out soft Dice (the
   * consensus when nothing was held out). Returns the chosen candidate indices, [M·K].
   */
  choose(): number[] {
    const G = GATE_CANDIDATES.length;
    const [M, K] = [this.annotators, this.structures];
    const dice = this.heldOutDice.data() as Float32Array;
    const cases = this.heldOutCases.data() as Float32Array;
    const chosen = Array.from({ length: M * K }, (_, mk) => {
      if (cases[mk] === 0) return 0;
      let best = 0;
      for (let g = 1; g < G; g++) if (dice[g * M * K + mk] > dice[best * M * K + mk]) best = g;
      return best;
    });
    tidy(() => {
      this.common.copy_(tensor(Float32Array.from(chosen, (g) => GATE_CANDIDATES[g].common), [M, K]));
      this.own.copy_(tensor(Float32Array.from(chosen, (g) => GATE_CANDIDATES[g].own), [M, K]));
    });
    return chosen;
  }

  /** Mean held-out soft Dice per candidate, annotator and structure ([G][M][K]; null where none was held out). */
  heldOutMeans(): (number | null)[][][] {
    const G = GATE_CANDIDATES.length;
    const [M, K] = [this.annotators, this.structures];
    const dice = this.heldOutDice.data() as Float32Array;
    const cases = this.heldOutCases.data() as Float32Array;
    return Array.from({ length: G }, (_, g) => Array.from({ length: M }, (_, m) => Array.from({ length: K }, (_, k) => {
      const n = cases[m * K + k];
      return n > 0 ? dice[(g * M + m) * K + k] / n : null;
    })));
  }
}

/** consensus + common·(mean departure) + own·(departure − mean departure); weights are numbers or [1, M, K, 1, 1]. */
function mix(consensus: Tensor, departures: Tensor, common: number | Tensor, own: number | Tensor): Tensor {
  return tidy(() => {
    const shared = departures.mean(1, true);
    return consensus.add(shared.mul(common)).add(departures.sub(shared).mul(own));
  });
}
