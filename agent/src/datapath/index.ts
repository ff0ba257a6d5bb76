/** The node's datapath: compile bpf/ objects, load or adopt them per object, attach programs to interfaces. */
export { Datapath, ensureBpffs, type DatapathOptions } from './datapath.js';
export { compileBpf, bpfCflags, defaultBpfDir, type CompileOptions, type CompiledObject } from './compile.js';
export { loadObject, generationId, LoadedObject, type LoadOptions } from './loader.js';
export {
  NODE_OBJECTS, POD_OBJECT, NETDEV_OBJECT, SOCK_OBJECT, HOOKS, DEFAULT_CT_TIMEOUTS, HAIRPIN_ADDR, hookSection, isCgroupHook, programDescriptor,
  type AttachTarget, type CgroupHookName, type ConntrackTimeouts, type Hook, type NodeConstants, type ObjectDescriptor, type ProgramDescriptor,
} from './objects.js';
export { cgroup2Root, findCgroup2Root, resolveCgroup2Dir } from './cgroup.js';
export { SocketDestroyer, type DestroyedSocket, type SocketDestroyerOptions, type SocketTarget } from './sock-destroy.js';
export { resolveHostRouting, hostRoutingProblem, type HostRouting, type HostRoutingOption } from './host-routing.js';
export { resolveTcMode, linkKindFor, type AttachModeOption, type TcMode } from './attach-mode.js';
export { attachPin, cgroupLinksDir, cgroupPin, generationDir, interfaceDir, linksDir, parseAttachPin, progsDir } from './pins.js';
export { migrateLegacyPins, type MigrationResult } from './migrate.js';
