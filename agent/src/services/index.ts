/** Services without kube-proxy: the desired frontends and backends computed from Services and EndpointSlices. */
export {
  DEFAULT_AFFINITY_SECONDS, SERVICE_NAME_LABEL, desiredFrontends, diffFrontends, frontendKey,
  type Backend, type EndpointSliceObject, type Frontend, type FrontendDiff, type FrontendKind, type NodeView, type Protocol, type ServiceObject,
} from './model.js';
export { Coalescer, Interner, sharedConditions, slimService, slimSlice, type ServiceSnapshot, type ServiceSource } from './source.js';
export { FileServiceSource, SERVICE_FILE_LIMITS, ServiceFileError, parseServiceDocuments, type FileSourceOptions, type ServiceDocuments, type ServiceFileLimits } from './file-source.js';
export { ENDPOINT_SLICES, KubeServiceSource, SERVICES, SERVICE_CIDRS, type KubeSourceOptions, type ServiceCidrApi } from './k8s-source.js';
