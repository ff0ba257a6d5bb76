/** Scheduling helpers shared by the benchmarks: deadlines, interleaving, bounded parallelism, reporting. */
import { cpus, release } from 'node:os';
import { PodnetError } from '../../../agent/src/errors/index.js';

/** Printed by every benchmark: the numbers come from a shared VM and only ratios within one run mean anything. */
export const NOISE_NOTE =
  'Machine: a noisy shared 2-vCPU VM. Absolute numbers move by up to 20% between runs; ' +
  'compare only the ratios, which come from variants interleaved in the same run.';

/** A wall-clock budget for a whole benchmark. */
export class Deadline {
  readonly #end: number;
  constructor(ms: number) {
    this.#end = Date.now() + ms;
  }
  /** True once the budget is spent. */
  get expired(): boolean {
    return Date.now() >= this.#end;
  }
  /** Milliseconds left, never negative. */
  get remainingMs(): number {
    return Math.max(0, this.#end - Date.now());
  }
}

/**
 * When a benchmark should wrap up: after SIGINT/SIGTERM (it then finishes the
 * current step and cleans up) or once `budgetMs` is spent.
 */
export function stopCondition(budgetMs: number): { readonly stop: () => boolean; readonly release: () => void } {
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    console.error('interrupted: finishing the current step, then cleaning up');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const deadline = new Deadline(budgetMs);
  return {
    stop: () => interrupted || deadline.expired,
    /** Restores default signal handling once the benchmark has cleaned up. */
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** `items` rotated left by `round`: ABC, BCA, CAB, ... so no variant always runs first. */
export function rotation<T>(items: readonly T[], round: number): T[] {
  if (items.length === 0) return [];
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Maps `items` through `fn` with at most `limit` calls in flight; results keep input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!(limit >= 1)) throw new PodnetError('INVALID_ARGUMENT', `run in parallel: limit ${limit} must be at least 1`);
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Where and on what a benchmark ran, for its JSON summary. */
export function machineInfo(): { cpus: number; cpuModel: string; kernel: string; node: string } {
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', kernel: release(), node: process.version };
}

/** Prints the machine-readable summary block that follows every benchmark's tables. */
export function printJsonSummary(summary: unknown): void {
  console.log('\nJSON summary:');
  console.log(JSON.stringify(summary, null, 2));
}
