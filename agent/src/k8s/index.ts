/** The Kubernetes source: supervised informers over a small API transport, and this node's Node. */
export { Informer, objectKey, type InformerHandlers, type InformerOptions, type InformerStats } from './informer.js';
export { NodeSource, NODES, nodeInfo, type NodeInfo, type NodeObject } from './node.js';
export {
  ApiStatusError, apiTransport, collectionPath, type ApiTransportOptions,
  type KubeObject, type KubeTransport, type ListPage, type ResourceType, type Selection, type WatchEvent, type WatchHandle,
} from './transport.js';
export { KubeconfigError, inClusterConfig, loadKubeconfig, type ApiEndpoint, type InClusterEnv } from './kubeconfig.js';
