/** Where the reconciler's Services and EndpointSlices come from: a file (standalone) or the Kubernetes API. */
import type { EndpointSliceObject, ServiceObject } from './model.js';

export interface ServiceSnapshot { services: ServiceObject[]; slices: EndpointSliceObject[]; serviceCidrs: string[] | undefined }
export interface ServiceSource { start(onChange: (s: ServiceSnapshot) => void): void; readonly synced: boolean; readonly lastError: string | undefined; stats(): Record<string, unknown>; stop(): Promise<void> }
