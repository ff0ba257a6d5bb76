/** Pods for benchmarks: a fresh network namespace plus one CNI ADD through the libcni driver. */
import { Netns } from '../../e2e/tools/netns.js';
import { cniAdd, cniDriver, resultIPv4, type CniCall } from '../../e2e/tools/cni.js';
import { PodnetError } from '../../../agent/src/errors/index.js';
import type { PreparedVariant } from './variants.js';

/** Where the driver is and where libcni may cache. */
export interface DriverContext {
  readonly driver: string;
  readonly cacheDir: string;
}

/** A pod this benchmark created. */
export interface BenchPod {
  readonly ns: Netns;
  readonly containerId: string;
  readonly ip: string;
}

/** Nanoseconds inside libcni as milliseconds; throws when the driver did not report them. */
export function libcniMs(call: CniCall): number {
  if (call.libcniNs === undefined) throw new PodnetError('CNI', `time cni ${call.verb}: the driver printed no timing line`);
  return call.libcniNs / 1e6;
}

/** Creates a namespace and ADDs it to `v`; the namespace is removed again if ADD fails. */
export async function addPod(v: PreparedVariant, d: DriverContext, containerId: string): Promise<{ pod: BenchPod; call: CniCall }> {
  const ns = await Netns.create('pnb');
  try {
    const { result, call } = await cniAdd({ driver: d.driver, cacheDir: d.cacheDir, conflist: v.conflist, cniPath: v.cniPath, containerId, netns: ns.path, ifname: 'eth0' });
    return { pod: { ns, containerId, ip: resultIPv4(result) }, call };
  } catch (e) {
    await cniDriver('del', { driver: d.driver, cacheDir: d.cacheDir, conflist: v.conflist, cniPath: v.cniPath, containerId, netns: ns.path, ifname: 'eth0' }).catch(() => undefined);
    await ns.close();
    throw e;
  }
}

/** DELs a pod from `v` (the call is returned for timing) and removes its namespace. */
export async function delPod(v: PreparedVariant, d: DriverContext, pod: BenchPod): Promise<CniCall> {
  try {
    const call = await cniDriver('del', { driver: d.driver, cacheDir: d.cacheDir, conflist: v.conflist, cniPath: v.cniPath, containerId: pod.containerId, netns: pod.ns.path, ifname: 'eth0' });
    if (!call.ok) throw new PodnetError('CNI', `cni del ${pod.containerId} from ${v.name}: code ${call.error.code}: ${call.error.msg}`);
    return call;
  } finally {
    await pod.ns.close();
  }
}
