/** Shared benchmark code: statistics, tables, scheduling, CNI variants, pods, plus the e2e process and namespace tools. */
export { median, percentile, ratio, summarize, type Summary } from './stats.js';
export { fmt, formatTable, type Cell } from './table.js';
export { Deadline, NOISE_NOTE, machineInfo, mapLimit, printJsonSummary, rotation, stopCondition } from './runner.js';
export {
  DEFAULT_PODNET_CNI,
  PODNET_HOOKS,
  bridgeHostLocal,
  nodeFloor,
  podnet,
  ptpHostLocal,
  type CniVariant,
  type PodnetHooks,
  type PreparedVariant,
  type VariantContext,
} from './variants.js';
export { addPod, delPod, libcniMs, type BenchPod, type DriverContext } from './pods.js';
export { Background, SYSTEM_PATH, cleanEnv, run, runOk, sleep, startBackground, waitFor, type RunOptions, type RunResult } from '../../e2e/tools/proc.js';
export { referencePluginDir } from '../../e2e/tools/harness.js';
export { Netns, freeSubnet24, hostLinks, listNetns, randomSuffix, vethBetween, withTempNetns } from '../../e2e/tools/netns.js';
export { DEFAULT_CNIDRIVER, buildCniDriver, cniDriver } from '../../e2e/tools/cni.js';
export { BENCH_TOOLS, ENTRY_POINT_NAMES, benchToolsDir, buildEntryPoints, peakRssKiB, type EntryPoint, type EntryPointBuild, type EntryPointName } from './entry-points.js';
