/**
 * This agent's own Node: its spec.podCIDRs (the IPAM pool) and addresses,
 * from an informer that watches exactly that Node by name.
 */
import type { Logger } from '../log/index.js';
import { Informer, type InformerOptions, type InformerStats } from './informer.js';
import type { KubeObject, KubeTransport, ResourceType } from './transport.js';

export const NODES: ResourceType = { apiVersion: 'v1', kind: 'Node', plural: 'nodes' };

/** The parts of a v1 Node the agent uses. */
export interface NodeObject extends KubeObject {
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: Array<{ type?: string; address?: string }> };
}

/** What the agent knows about its Node. */
export interface NodeInfo {
  name: string;
  /** spec.podCIDRs (or the older spec.podCIDR); empty until the controller-manager assigns one. */
  podCidrs: string[];
  /** status.addresses of type InternalIP. */
  internalIps: string[];
}

/** Reads the fields the agent needs out of a Node object. */
export function nodeInfo(n: NodeObject): NodeInfo {
  const cidrs = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  return {
    name: n.metadata?.name ?? '',
    podCidrs: [...cidrs],
    internalIps: (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' && a.address).map((a) => a.address!),
  };
}

/** Watches one Node by name and reports each change of it. */
export class NodeSource {
  private readonly informer: Informer<NodeObject>;
  private readonly listeners: Array<(n: NodeInfo | undefined) => void> = [];

  constructor(transport: KubeTransport, readonly nodeName: string, log: Logger, opts: InformerOptions = {}) {
    const emit = (): void => {
      const n = this.current();
      for (const l of this.listeners) l(n);
    };
    this.informer = new Informer<NodeObject>(transport, NODES, { fieldSelector: `metadata.name=${nodeName}` }, {
      add: emit, update: emit, delete: emit,
    }, log.child({ informer: 'node' }), opts);
  }

  /** Starts watching. */
  start(): void {
    this.informer.start();
  }

  /** Stops watching. */
  stop(): void {
    this.informer.stop();
  }

  /** Resolves after the first list. */
  get synced(): Promise<void> {
    return this.informer.synced;
  }

  get hasSynced(): boolean {
    return this.informer.hasSynced;
  }

  get stats(): InformerStats {
    return this.informer.stats;
  }

  /** The Node as last seen; undefined before the first list or when it does not exist. */
  current(): NodeInfo | undefined {
    const n = this.informer.get(this.nodeName);
    return n ? nodeInfo(n) : undefined;
  }

  /** Calls `fn` after every change of the Node (also its deletion). */
  onChange(fn: (n: NodeInfo | undefined) => void): void {
    this.listeners.push(fn);
  }
}
