/** The values that occur more than once in `xs`, each once, in the order of their second occurrence; linear time. */
export function duplicates<T>(xs: readonly T[]): T[] {
  const seen = new Set<T>();
  const repeated = new Set<T>();
  for (const x of xs) {
    if (seen.has(x)) repeated.add(x);
    else seen.add(x);
  }
  return [...repeated];
}
