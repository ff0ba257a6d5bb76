/** The Kubernetes source: supervised informers on @kubernetes/client-node, and this node's Node. */
export { Informer, objectKey, type InformerHandlers, type InformerOptions, type InformerStats } from './informer.js';
export { NodeSource, NODES, nodeInfo, type NodeInfo, type NodeObject } from './node.js';
export {
  ApiStatusError, clientNodeTransport, collectionPath,
  type KubeObject, type KubeTransport, type ListPage, type ResourceType, type Selection, type WatchEvent, type WatchHandle,
} from './transport.js';
