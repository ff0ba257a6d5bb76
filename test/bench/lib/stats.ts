/** Order statistics for benchmark samples. */
import { PodnetError } from '../../../agent/src/errors/index.js';

/**
 * The p-th percentile (0..100) by linear interpolation between the two
 * nearest ranks, so p50 of an even count is the mean of the middle two.
 * Throws on an empty sample.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new PodnetError('INVALID_ARGUMENT', `compute percentile ${p}: no samples`);
  if (!(p >= 0 && p <= 100)) throw new PodnetError('INVALID_ARGUMENT', `compute percentile ${p}: must be within 0..100`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (rank - lo);
}

/** The 50th percentile. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** The usual summary of one sample. */
export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Count, extremes, p50/p90/p99 and mean of `values`. Throws on an empty sample. */
export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    min: percentile(values, 0),
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: percentile(values, 100),
    mean: values.reduce((s, v) => s + v, 0) / values.length,
  };
}

/** a / b, or NaN when b is 0 (printed as "n/a" by the table). */
export function ratio(a: number, b: number): number {
  return b === 0 ? Number.NaN : a / b;
}
