/** Test tooling for real clients: libcni driver, reference plugins, private containerd, busybox image, namespaces, processes. */
export { BUILD_DIR, REPO_ROOT } from './repo.js';
export {
  harnessBinaries,
  harnessEnv,
  harnessBinariesSync,
  harnessBinary,
  referencePluginDir,
  type HarnessBinaries,
  type TestHarnessComponent,
} from './harness.js';
export {
  Background,
  SYSTEM_PATH,
  cleanEnv,
  commandError,
  run,
  runOk,
  sleep,
  startBackground,
  waitFor,
  type RunOptions,
  type RunResult,
} from './proc.js';
export { NETNS_DIR, Netns, freeSubnet24, hostLinks, listNetns, randomSuffix, vethBetween, withTempNetns } from './netns.js';
export {
  DEFAULT_CNIDRIVER,
  buildCniDriver,
  cniAdd,
  cniDriver,
  cniMustSucceed,
  resultIPv4,
  writeConflist,
  type CniAttachment,
  type CniCall,
  type CniDriverOptions,
  type CniErrorObject,
  type CniGcSummary,
  type CniInterface,
  type CniIpConfig,
  type CniResult,
  type CniStatusSummary,
  type CniVerb,
} from './cni.js';
export {
  CNI_PATHS_LOCK,
  InstalledCniPaths,
  SYSTEM_CNI_BIN_DIR,
  SYSTEM_CNI_CONF_DIR,
  describeCniDirs,
  installCniPaths,
  type CniPathsOptions,
} from './cni-paths.js';
export { PrivateContainerd, type ContainerdOptions, type CtrRunSpec } from './containerd.js';
export { BUSYBOX_IMAGE, DEFAULT_BUSYBOX_TAR, buildBusyboxImage } from './image.js';
export { natChains, natRulesMatching, removePortmapChains } from './iptables.js';
