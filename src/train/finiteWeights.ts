// A model whose weights hold NaN or infinity (a diverged run, a damaged export) predicts garbage for
// every image: refuse it before anything is written.
import { UserError } from '../errors';
import { nn, tidy } from '../torch';

/** Throws a UserError naming `file` and the first tensor holding a non-finite value. */
export function checkFiniteWeights(model: nn.Module, file: string): void {
  for (const [name, t] of Object.entries(model.stateDict())) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') continue;
    const bad = tidy(() => t.isfinite().logicalNot().sum().item());
    if (bad > 0) throw new UserError(`${file}: the model holds non-finite weights (${bad} NaN or infinite value${bad === 1 ? '' : 's'} in '${name}'); retrain it or use another checkpoint`);
  }
}
