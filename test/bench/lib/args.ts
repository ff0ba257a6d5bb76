/** Command-line helpers shared by the benchmark drivers. */
import { PodnetError } from '../../../agent/src/errors/index.js';

/** Parses an integer option `--name` that must be at least `min`; `dflt` when absent. */
export function intOption(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new PodnetError('INVALID_ARGUMENT', `parse --${name}: ${v} is not an integer >= ${min}`);
  return n;
}
