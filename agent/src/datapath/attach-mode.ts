/**
 * The one place that decides how a program attaches: tcx link or clsact
 * filter for tc hooks (--attach-mode auto|tcx|clsact), an XDP link for XDP.
 */
import { PodnetError } from '../errors/index.js';
import { probeTcx, type LinkKind } from '../libbpf/index.js';
import { isCgroupHook, type Hook } from './objects.js';

/** What --attach-mode asks for. */
export type AttachModeOption = 'auto' | 'tcx' | 'clsact';
/** How this node attaches tc programs. */
export type TcMode = 'tcx' | 'clsact';

/**
 * Resolves --attach-mode: auto is tcx when the kernel has it, clsact
 * otherwise. Throws PodnetError ENOTSUP for tcx on a kernel without it.
 */
export function resolveTcMode(option: AttachModeOption, hasTcx: () => boolean = probeTcx): TcMode {
  if (option === 'auto') return hasTcx() ? 'tcx' : 'clsact';
  if (option === 'tcx' && !hasTcx()) throw new PodnetError('NOT_SUPPORTED', 'attach mode tcx: not supported by this kernel (needs Linux >= 6.6); use --attach-mode clsact or auto');
  return option;
}

/** The attachment kind a hook gets on this node. */
export function linkKindFor(hook: Hook, mode: TcMode): LinkKind {
  if (hook === 'xdp') return 'xdp';
  if (isCgroupHook(hook)) return 'cgroup';
  return mode === 'tcx' ? 'tcx' : 'tc';
}

/** tcx/clsact direction of a tc hook. */
export function tcDirection(hook: Hook): 'ingress' | 'egress' {
  if (hook === 'xdp' || isCgroupHook(hook)) throw new PodnetError('INVALID_ARGUMENT', `${hook} is not a tc hook`);
  return hook === 'tc_ingress' ? 'ingress' : 'egress';
}

/** How a hook reads in messages: "ingress", "egress", "xdp", "cgroup/connect4". */
export function hookLabel(hook: Hook): string {
  if (isCgroupHook(hook)) return `cgroup/${hook.slice('cgroup_'.length)}`;
  return hook === 'xdp' ? 'xdp' : tcDirection(hook);
}
