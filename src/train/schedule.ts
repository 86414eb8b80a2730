/**
 * Learning-rate schedules as pure functions of the step, with PyTorch's semantics: `step` is the
 * number of scheduler steps taken so far (torch's `last_epoch`), so step 0 gives the base rate and
 * the value at step k is what `optimizer.param_groups[0]['lr']` holds after k `scheduler.step()`
 * calls. We use torch's closed forms: they equal its chained (recursive) updates up to rounding,
 * and being stateless they make resuming from a checkpoint trivial (no scheduler state to save).
 */
import { UserError } from '../errors';

export type LRSchedule =
  | { kind: 'constant' }
  | { kind: 'poly'; power?: number }
  | { kind: 'cosine'; minLr?: number }
  | { kind: 'step'; stepSize: number; gamma?: number };

/** A step count is a caller's loop index: a bad one is a bug, not a user mistake. */
function checkStep(step: number): void {
  if (!(Number.isFinite(step) && step >= 0)) throw new RangeError(`learning-rate schedule: step must be a finite number >= 0, got ${step}`);
}

/** totalSteps comes from the user's epochs x iterations settings, so it is reported as a UserError. */
function checkTotal(kind: string, totalSteps: number): void {
  if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) {
    throw new UserError(`learning-rate schedule '${kind}': total steps must be a positive integer, got ${totalSteps}`);
  }
}

/**
 * Polynomial decay, as nnU-Net's `poly_lr` and the RIGA baselines use it (and torch's PolynomialLR):
 * baseLr * (1 - step / totalSteps) ^ power. Clamped at totalSteps to 0 like PolynomialLR, where
 * nnU-Net's formula would raise a negative number to a fractional power (NaN).
 */
export function polyLR(baseLr: number, step: number, totalSteps: number, power = 0.9): number {
  checkStep(step);
  checkTotal('poly', totalSteps);
  if (!(Number.isFinite(power) && power >= 0)) throw new UserError(`learning-rate schedule 'poly': power must be >= 0, got ${power}`);
  return baseLr * Math.pow(1 - Math.min(step, totalSteps) / totalSteps, power);
}

/**
 * CosineAnnealingLR's closed form: minLr + (baseLr - minLr) * (1 + cos(pi * step / totalSteps)) / 2.
 * Like torch (with either its closed or chained form) this is periodic: past totalSteps the rate
 * climbs back towards baseLr, reaching it at 2 * totalSteps. Train for exactly totalSteps steps, or
 * use poly, if that is not wanted.
 */
export function cosineLR(baseLr: number, step: number, totalSteps: number, minLr = 0): number {
  checkStep(step);
  checkTotal('cosine', totalSteps);
  if (!Number.isFinite(minLr)) throw new UserError(`learning-rate schedule 'cosine': minLr must be a finite number, got ${minLr}`);
  return minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * step) / totalSteps))) / 2;
}

/** StepLR: the rate is multiplied by gamma every stepSize steps, i.e. baseLr * gamma ^ floor(step / stepSize). */
export function stepLR(baseLr: number, step: number, stepSize: number, gamma = 0.1): number {
  checkStep(step);
  if (!(Number.isInteger(stepSize) && stepSize >= 1)) {
    throw new UserError(`learning-rate schedule 'step': stepSize must be a positive integer, got ${stepSize}`);
  }
  if (!(Number.isFinite(gamma) && gamma > 0)) throw new UserError(`learning-rate schedule 'step': gamma must be > 0, got ${gamma}`);
  return baseLr * Math.pow(gamma, Math.floor(step / stepSize));
}

/** The learning rate at `step` of a run of `totalSteps` steps (totalSteps is unused by 'constant' and 'step'). */
export function learningRateAt(schedule: LRSchedule, baseLr: number, step: number, totalSteps: number): number {
  switch (schedule.kind) {
    case 'constant':
      checkStep(step);
      return baseLr;
    case 'poly':
      return polyLR(baseLr, step, totalSteps, schedule.power);
    case 'cosine':
      return cosineLR(baseLr, step, totalSteps, schedule.minLr);
    case 'step':
      return stepLR(baseLr, step, schedule.stepSize, schedule.gamma);
    default: {
      // Reached only from untyped input (e.g. a parsed config file that skipped validation).
      const kind = (schedule as { kind?: unknown }).kind;
      throw new UserError(`learning-rate schedule: unknown kind ${JSON.stringify(kind)} (expected constant, poly, cosine or step)`);
    }
  }
}
