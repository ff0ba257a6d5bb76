/** Services without kube-proxy: the desired frontends and backends computed from Services and EndpointSlices. */
export {
  DEFAULT_AFFINITY_SECONDS, SERVICE_NAME_LABEL, backendKey, desiredFrontends, diffFrontends, endpointPorts, frontendKey,
  type Backend, type EndpointList, type EndpointObject, type EndpointPort, type EndpointSliceObject, type Frontend, type FrontendDiff, type FrontendKind, type NodeView, type Protocol, type ServiceObject,
} from './model.js';
export { Coalescer, Interner, PackedEndpoints, sharedConditions, slimService, slimSlice, type ServiceSnapshot, type ServiceSource } from './source.js';
export { FileServiceSource, SERVICE_FILE_LIMITS, ServiceFileError, parseServiceDocuments, type FileSourceOptions, type ServiceDocuments, type ServiceFileLimits } from './file-source.js';
export { ENDPOINT_SLICES, KubeServiceSource, SERVICES, SERVICE_CIDRS, type KubeSourceOptions, type ServiceCidrApi } from './k8s-source.js';
export { ServiceReconciler, MapFullError, placeSlots, type FrontendName, type ServiceReconcileOutcome } from './reconciler.js';
export { BpfServiceTables, FakeServiceTables, SERVICE_MAP_NAMES, type ServiceTables } from './tables.js';
export { ServiceController, nodePortAddresses, type ServiceControllerDeps } from './controller.js';
export { HealthCheckServers, healthCheckTargets, type HealthCheckTarget } from './health-check.js';
export { servicesView } from './view.js';
