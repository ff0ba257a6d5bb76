/** Services without kube-proxy: the desired frontends and backends computed from Services and EndpointSlices. */
export {
  DEFAULT_AFFINITY_SECONDS, SERVICE_NAME_LABEL, backendKey, desiredFrontends, diffFrontends, endpointPorts, frontendKey,
  type Backend, type EndpointPort, type EndpointSliceObject, type Frontend, type FrontendDiff, type FrontendKind, type NodeView, type Protocol, type ServiceObject,
} from './model.js';
