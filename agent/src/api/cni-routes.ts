/** The CNI routes of the agent API: thin adapters from protocol requests to the endpoint manager. */
import type { EndpointManager } from '../endpoints/index.js';
import { parsePortMappings } from '../endpoints/host-ports.js';
import type { Logger } from '../log/index.js';
import { PodnetError } from '../errors/index.js';
import { CniError, cniCodeOf } from './cni-error.js';
import { CniErrorCode, type CniAddRequest, type CniCheckRequest, type CniDelRequest, type CniErrorBody, type CniGcRequest } from './protocol.js';
import type { ApiRequest, ApiResponse, Routes } from './server.js';

/** Errors the endpoint manager logged itself (ADD failures), so they are not logged twice. */
const loggedByManager = new WeakSet<object>();

/** Observes each CNI operation (for metrics): verb, outcome code (0 = ok) and seconds taken. */
export type CniObserver = (verb: string, code: number, seconds: number) => void;

function need(body: unknown, fields: string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null) throw new CniError(CniErrorCode.DecodeFailure, 'decode request: body is not a JSON object');
  const b = body as Record<string, unknown>;
  for (const f of fields) {
    if (typeof b[f] !== 'string' || b[f] === '') throw new CniError(CniErrorCode.InvalidEnvironment, `decode request: field ${f} is missing or not a string`);
  }
  return b;
}

/** Whether the agent can service ADDs now, and if not, why. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/**
 * Builds the /v1/cni/* routes. `readiness` tells STATUS whether the agent
 * can service ADDs. Every failed operation is logged once: ADD by the
 * endpoint manager (it knows what was undone), the others here.
 */
export function cniRoutes(mgr: EndpointManager, opts: { readiness: () => Readiness; defaultMtu: number; log: Logger; observe?: CniObserver }): Routes {
  const wrap = (verb: string, fn: (req: ApiRequest) => Promise<unknown> | unknown) => async (req: ApiRequest): Promise<ApiResponse> => {
    const t0 = process.hrtime.bigint();
    let code = 0;
    try {
      return { status: 200, body: (await fn(req)) ?? {} };
    } catch (err) {
      code = cniCodeOf(err);
      if (!loggedByManager.has(err as object)) {
        const b = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<string, unknown>;
        opts.log.warn({ err, verb, code, containerId: b['containerId'], ifName: b['ifName'] }, `CNI ${verb} failed`);
      }
      throw err;
    } finally {
      opts.observe?.(verb, code, Number(process.hrtime.bigint() - t0) / 1e9);
    }
  };
  return {
    'POST /v1/cni/add': wrap('ADD', async (req) => {
      const b = need(req.body, ['containerId', 'netns', 'ifName']) as unknown as CniAddRequest;
      // Before anything changes: a bad entry fails the ADD with nothing to undo.
      const ports = parsePortMappings(b.portMappings);
      for (const why of ports.skipped) opts.log.warn({ containerId: b.containerId, ifName: b.ifName }, `host port skipped: ${why}`);
      const addReq = {
        containerId: b.containerId,
        netns: b.netns,
        ifName: b.ifName,
        mtu: b.mtu ?? opts.defaultMtu,
        ...(b.args?.['K8S_POD_NAMESPACE'] ? { podNamespace: b.args['K8S_POD_NAMESPACE'] } : {}),
        ...(b.args?.['K8S_POD_NAME'] ? { podName: b.args['K8S_POD_NAME'] } : {}),
        ...(ports.mappings.length > 0 ? { hostPorts: ports.mappings } : {}),
      };
      try {
        return (await mgr.add(addReq)).result;
      } catch (err) {
        if (typeof err === 'object' && err !== null) loggedByManager.add(err);
        throw err;
      }
    }),
    'POST /v1/cni/del': wrap('DEL', (req) => {
      const b = need(req.body, ['containerId', 'ifName']) as unknown as CniDelRequest;
      mgr.del(b.containerId, b.ifName);
    }),
    'POST /v1/cni/check': wrap('CHECK', (req) => {
      const b = need(req.body, ['containerId', 'ifName', 'netns']) as unknown as CniCheckRequest;
      if (!b.prevResult || !Array.isArray(b.prevResult.ips)) throw new CniError(CniErrorCode.InvalidConfig, 'check: prevResult is missing or has no ips');
      const hostPorts = b.portMappings === undefined || b.portMappings === null ? undefined : parsePortMappings(b.portMappings).mappings;
      mgr.check({
        containerId: b.containerId, ifName: b.ifName, netns: b.netns, prevResult: { ...b.prevResult, routes: b.prevResult.routes ?? [], interfaces: b.prevResult.interfaces ?? [] },
        ...(hostPorts ? { hostPorts } : {}),
      });
    }),
    'POST /v1/cni/gc': wrap('GC', async (req) => {
      const b = need(req.body, []) as unknown as CniGcRequest;
      if (!Array.isArray(b.validAttachments)) throw new CniError(CniErrorCode.InvalidConfig, 'gc: validAttachments is not a list');
      return await mgr.gc(b.validAttachments);
    }),
    'GET /v1/cni/status': wrap('STATUS', () => {
      const r = opts.readiness();
      if (!r.ready) throw new CniError(CniErrorCode.NotReady, `podnet agent cannot service ADD requests: ${r.reason}`);
    }),
  };
}

/** Maps any error to the CNI error body the entry point prints. */
export function cniErrorResponse(err: unknown, req?: ApiRequest): ApiResponse {
  // A request body that is not JSON is the spec's "failed to decode content".
  const code = err instanceof PodnetError && err.code === 'BAD_JSON' ? CniErrorCode.DecodeFailure : cniCodeOf(err);
  const body: CniErrorBody = { code, msg: err instanceof Error ? err.message : String(err) };
  if (err instanceof CniError && err.details) body.details = err.details;
  const status = code === CniErrorCode.Internal ? 500 : code === CniErrorCode.NotReady || code === CniErrorCode.TryAgainLater ? 503 : 400;
  // The CNI routes log their failures themselves, one line each.
  return { status, body, ...(req?.path.startsWith('/v1/cni/') ? { logged: true } : {}) };
}
