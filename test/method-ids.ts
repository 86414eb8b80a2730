// One method id per registered method, so that a new built-in method is covered by the per-method
// training, prediction and export tests without being listed by hand.
import { methodDescriptors } from '../src/methods/registry';

/** Each registered method's id on a dataset of `annotators` annotators; a family (single:K) by its second member. */
export function registeredMethodIds(annotators: number): string[] {
  return methodDescriptors().map((d) => {
    const members = d.variants?.expand(annotators);
    return members ? members[Math.min(1, members.length - 1)] : d.name;
  });
}
