import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CniError } from '../../agent/src/api/cni-error.js';
import { cniErrorResponse, cniRoutes } from '../../agent/src/api/cni-routes.js';
import { CniErrorCode, type CniResult } from '../../agent/src/api/protocol.js';
import type { ApiRequest, ApiResponse, Routes } from '../../agent/src/api/server.js';
import type { AddRequest, EndpointManager } from '../../agent/src/endpoints/index.js';
import { PodnetError } from '../../agent/src/errors/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

const RESULT: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'pn0123456789ab', mac: '02:00:00:00:00:02' }, { name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/p1' }],
  ips: [{ address: '10.244.1.2/32', gateway: '169.254.1.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
  dns: {},
};

type CheckArg = Parameters<EndpointManager['check']>[0];

/** Records every call; each method's behaviour can be replaced per test. */
class FakeManager {
  adds: AddRequest[] = [];
  dels: Array<[string, string]> = [];
  checks: CheckArg[] = [];
  gcs: Array<Array<{ containerId: string; ifName: string }>> = [];
  addImpl: (req: AddRequest) => Promise<void> = async () => {};
  delImpl: () => void = () => {};

  async add(req: AddRequest): Promise<{ result: CniResult; meta: unknown }> {
    this.adds.push(req);
    await this.addImpl(req);
    return { result: RESULT, meta: {} };
  }
  del(containerId: string, ifName: string): void {
    this.dels.push([containerId, ifName]);
    this.delImpl();
  }
  check(req: CheckArg): void {
    this.checks.push(req);
  }
  gc(valid: Array<{ containerId: string; ifName: string }>): { released: string[]; links: string[] } {
    this.gcs.push(valid);
    return { released: ['10.244.1.9'], links: ['pn00000000000f'] };
  }
}

interface Observed { verb: string; code: number; seconds: number }

function setup(opts: { ready?: boolean; defaultMtu?: number } = {}): { mgr: FakeManager; routes: Routes; observed: Observed[]; call: (key: string, body?: unknown) => Promise<ApiResponse> } {
  const mgr = new FakeManager();
  const observed: Observed[] = [];
  const routes = cniRoutes(mgr as unknown as EndpointManager, {
    readiness: () => ((opts.ready ?? true) ? { ready: true as const } : { ready: false as const, reason: 'starting' }),
    defaultMtu: opts.defaultMtu ?? 1450,
    log: silentLogger(),
    observe: (verb, code, seconds) => observed.push({ verb, code, seconds }),
  });
  const call = (key: string, body?: unknown): Promise<ApiResponse> => {
    const route = routes[key];
    assert.notEqual(route, undefined, `route ${key} exists`);
    const [method, path] = key.split(' ') as [string, string];
    const req: ApiRequest = { method, path, query: new URLSearchParams(), body };
    return route!(req);
  };
  return { mgr, routes, observed, call };
}

/** Asserts the promise rejects with a CniError carrying `code`. */
async function rejectsCni(p: Promise<unknown>, code: number, msg?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(err instanceof CniError, true, `expected CniError, got ${String(err)}`);
    assert.equal((err as CniError).cniCode, code);
    if (msg) assert.match((err as Error).message, msg);
    return true;
  });
}

const addBody = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  containerId: 'c1',
  netns: '/var/run/netns/p1',
  ifName: 'eth0',
  args: { K8S_POD_NAMESPACE: 'kube-system', K8S_POD_NAME: 'coredns-1', IgnoreUnknown: '1' },
  network: 'podnet',
  cniVersion: '1.0.0',
  ...over,
});

describe('cniRoutes', () => {
  it('registers exactly the CNI routes of the protocol', () => {
    assert.deepEqual(Object.keys(setup().routes).sort(), [
      'GET /v1/cni/status', 'POST /v1/cni/add', 'POST /v1/cni/check', 'POST /v1/cni/del', 'POST /v1/cni/gc',
    ]);
  });

  it('ADD passes the pod namespace and name from CNI_ARGS and the default MTU, and answers the result', async () => {
    const { mgr, call } = setup({ defaultMtu: 1450 });
    const res = await call('POST /v1/cni/add', addBody());
    assert.deepEqual(mgr.adds, [{ containerId: 'c1', netns: '/var/run/netns/p1', ifName: 'eth0', mtu: 1450, podNamespace: 'kube-system', podName: 'coredns-1' }]);
    assert.deepEqual(res, { status: 200, body: RESULT });
  });

  it('ADD uses the MTU from the network config over the default', async () => {
    const { mgr, call } = setup({ defaultMtu: 1500 });
    await call('POST /v1/cni/add', addBody({ mtu: 9000 }));
    assert.equal(mgr.adds[0]?.mtu, 9000);
  });

  it('ADD leaves the pod labels out when CNI_ARGS lacks them', async () => {
    const { mgr, call } = setup({ defaultMtu: 1500 });
    await call('POST /v1/cni/add', addBody({ args: {} }));
    await call('POST /v1/cni/add', addBody({ args: undefined }));
    await call('POST /v1/cni/add', addBody({ args: { K8S_POD_NAMESPACE: '', K8S_POD_NAME: 'only-name' } }));
    assert.deepEqual(mgr.adds, [
      { containerId: 'c1', netns: '/var/run/netns/p1', ifName: 'eth0', mtu: 1500 },
      { containerId: 'c1', netns: '/var/run/netns/p1', ifName: 'eth0', mtu: 1500 },
      { containerId: 'c1', netns: '/var/run/netns/p1', ifName: 'eth0', mtu: 1500, podName: 'only-name' },
    ]);
  });

  it('ADD with a missing, empty or non-string field fails with code 4 naming the field, before touching the manager', async () => {
    const { mgr, call } = setup();
    for (const field of ['containerId', 'netns', 'ifName']) {
      await rejectsCni(call('POST /v1/cni/add', addBody({ [field]: undefined })), CniErrorCode.InvalidEnvironment, new RegExp(`field ${field} is missing`));
      await rejectsCni(call('POST /v1/cni/add', addBody({ [field]: '' })), CniErrorCode.InvalidEnvironment, new RegExp(field));
      await rejectsCni(call('POST /v1/cni/add', addBody({ [field]: 7 })), CniErrorCode.InvalidEnvironment, new RegExp(field));
    }
    assert.deepEqual(mgr.adds, []);
  });

  it('a body that is not a JSON object fails with code 6 on every verb that reads one', async () => {
    const { mgr, call } = setup();
    for (const key of ['POST /v1/cni/add', 'POST /v1/cni/del', 'POST /v1/cni/check', 'POST /v1/cni/gc']) {
      for (const body of [undefined, null, 'text', 42]) {
        await rejectsCni(call(key, body), CniErrorCode.DecodeFailure, /not a JSON object/);
      }
    }
    assert.equal(mgr.adds.length + mgr.dels.length + mgr.checks.length + mgr.gcs.length, 0);
  });

  it('ADD passes the manager\'s error through unchanged', async () => {
    const { mgr, call } = setup();
    const boom = new CniError(CniErrorCode.PoolExhausted, 'allocate address: pool 10.244.1.0/24 is exhausted');
    mgr.addImpl = async () => { throw boom; };
    await assert.rejects(call('POST /v1/cni/add', addBody()), (err) => err === boom);
  });

  it('DEL calls the manager with container and interface, needs no netns, and answers {}', async () => {
    const { mgr, call } = setup();
    const res = await call('POST /v1/cni/del', { containerId: 'c1', ifName: 'eth0', args: {}, network: 'podnet', cniVersion: '1.0.0' });
    assert.deepEqual(mgr.dels, [['c1', 'eth0']]);
    assert.deepEqual(res, { status: 200, body: {} });
  });

  it('DEL without ifName fails with code 4', async () => {
    const { mgr, call } = setup();
    await rejectsCni(call('POST /v1/cni/del', { containerId: 'c1' }), CniErrorCode.InvalidEnvironment, /ifName/);
    assert.deepEqual(mgr.dels, []);
  });

  it('CHECK without prevResult, or with a prevResult that has no ips, fails with code 7', async () => {
    const { mgr, call } = setup();
    await rejectsCni(call('POST /v1/cni/check', addBody()), CniErrorCode.InvalidConfig, /prevResult/);
    await rejectsCni(call('POST /v1/cni/check', addBody({ prevResult: { cniVersion: '1.0.0' } })), CniErrorCode.InvalidConfig, /prevResult/);
    await rejectsCni(call('POST /v1/cni/check', addBody({ prevResult: { ips: 'x' } })), CniErrorCode.InvalidConfig);
    assert.deepEqual(mgr.checks, []);
  });

  it('CHECK without netns fails with code 4', async () => {
    const { call } = setup();
    await rejectsCni(call('POST /v1/cni/check', addBody({ netns: undefined, prevResult: RESULT })), CniErrorCode.InvalidEnvironment, /netns/);
  });

  it('CHECK fills missing routes and interfaces of prevResult with empty lists', async () => {
    const { mgr, call } = setup();
    const prev = { cniVersion: '1.0.0', ips: [{ address: '10.244.1.2/32' }], dns: {} };
    const res = await call('POST /v1/cni/check', addBody({ prevResult: prev }));
    assert.deepEqual(res, { status: 200, body: {} });
    assert.deepEqual(mgr.checks, [{ containerId: 'c1', ifName: 'eth0', netns: '/var/run/netns/p1', prevResult: { ...prev, routes: [], interfaces: [] } }]);
  });

  it('CHECK passes a complete prevResult as is', async () => {
    const { mgr, call } = setup();
    await call('POST /v1/cni/check', addBody({ prevResult: RESULT }));
    assert.deepEqual(mgr.checks[0]?.prevResult, RESULT);
  });

  it('GC passes the valid attachments and answers what the manager removed', async () => {
    const { mgr, call } = setup();
    const valid = [{ containerId: 'c1', ifName: 'eth0' }];
    const res = await call('POST /v1/cni/gc', { network: 'podnet', cniVersion: '1.1.0', validAttachments: valid });
    assert.deepEqual(mgr.gcs, [valid]);
    assert.deepEqual(res, { status: 200, body: { released: ['10.244.1.9'], links: ['pn00000000000f'] } });
  });

  it('GC without a list of valid attachments fails with code 7', async () => {
    const { mgr, call } = setup();
    await rejectsCni(call('POST /v1/cni/gc', { network: 'podnet' }), CniErrorCode.InvalidConfig, /validAttachments/);
    await rejectsCni(call('POST /v1/cni/gc', { validAttachments: {} }), CniErrorCode.InvalidConfig);
    assert.deepEqual(mgr.gcs, []);
  });

  it('STATUS answers {} when ready and fails with code 50 when not', async () => {
    assert.deepEqual(await setup({ ready: true }).call('GET /v1/cni/status'), { status: 200, body: {} });
    await rejectsCni(setup({ ready: false }).call('GET /v1/cni/status'), CniErrorCode.NotReady, /cannot service ADD requests: starting/);
  });

  it('STATUS asks readiness on every call, not once', async () => {
    let ready = false;
    const routes = cniRoutes({} as EndpointManager, { readiness: () => (ready ? { ready: true as const } : { ready: false as const, reason: 'starting' }), defaultMtu: 1500, log: silentLogger() });
    const status = (): Promise<ApiResponse> => routes['GET /v1/cni/status']!({ method: 'GET', path: '/v1/cni/status', query: new URLSearchParams(), body: undefined });
    await rejectsCni(status(), CniErrorCode.NotReady);
    ready = true;
    assert.deepEqual(await status(), { status: 200, body: {} });
  });

  it('tells the observer each verb, its outcome code (0 on success) and the seconds it took', async () => {
    const { mgr, observed, call } = setup({ ready: false });
    mgr.addImpl = async () => { await sleep(30); };
    await call('POST /v1/cni/add', addBody());
    await call('POST /v1/cni/del', { containerId: 'c1', ifName: 'eth0' });
    await rejectsCni(call('POST /v1/cni/check', addBody()), CniErrorCode.InvalidConfig);
    await call('POST /v1/cni/gc', { validAttachments: [] });
    await rejectsCni(call('GET /v1/cni/status'), CniErrorCode.NotReady);
    await rejectsCni(call('POST /v1/cni/add', addBody({ ifName: undefined })), CniErrorCode.InvalidEnvironment);
    mgr.delImpl = () => { throw new Error('netlink socket closed'); };
    await assert.rejects(call('POST /v1/cni/del', { containerId: 'c1', ifName: 'eth0' }), /netlink socket closed/);

    assert.deepEqual(observed.map((o) => [o.verb, o.code]), [
      ['ADD', 0], ['DEL', 0], ['CHECK', CniErrorCode.InvalidConfig], ['GC', 0], ['STATUS', CniErrorCode.NotReady], ['ADD', CniErrorCode.InvalidEnvironment], ['DEL', CniErrorCode.Internal],
    ]);
    for (const o of observed) assert.equal(Number.isFinite(o.seconds) && o.seconds >= 0, true, `${o.verb} took ${o.seconds} s`);
    // The first ADD waited 30 ms inside the manager; the observer must see it in seconds, not ms or ns.
    assert.equal(observed[0]!.seconds >= 0.025 && observed[0]!.seconds < 5, true, `ADD took ${observed[0]!.seconds} s`);
  });

  it('works without an observer', async () => {
    const routes = cniRoutes(new FakeManager() as unknown as EndpointManager, { readiness: () => ({ ready: true as const }), defaultMtu: 1500, log: silentLogger() });
    assert.deepEqual(await routes['POST /v1/cni/del']!({ method: 'POST', path: '/v1/cni/del', query: new URLSearchParams(), body: { containerId: 'c', ifName: 'eth0' } }), { status: 200, body: {} });
  });
});

describe('cniErrorResponse', () => {
  it('maps client-side CNI codes to 400 with code and message', () => {
    for (const code of [CniErrorCode.IncompatibleVersion, CniErrorCode.InvalidEnvironment, CniErrorCode.DecodeFailure, CniErrorCode.InvalidConfig, CniErrorCode.PoolExhausted]) {
      assert.deepEqual(cniErrorResponse(new CniError(code, `m${code}`)), { status: 400, body: { code, msg: `m${code}` } });
    }
  });

  it('maps not-ready and try-again-later to 503', () => {
    assert.equal(cniErrorResponse(new CniError(CniErrorCode.NotReady, 'x')).status, 503);
    assert.equal(cniErrorResponse(new CniError(CniErrorCode.TryAgainLater, 'x')).status, 503);
  });

  it('maps an internal CniError and any other error to 500 with code 999 and the message', () => {
    assert.deepEqual(cniErrorResponse(new CniError(CniErrorCode.Internal, 'check c/eth0: veth missing')), { status: 500, body: { code: 999, msg: 'check c/eth0: veth missing' } });
    assert.deepEqual(cniErrorResponse(new PodnetError('SYSCALL', 'create veth: EPERM')), { status: 500, body: { code: 999, msg: 'create veth: EPERM' } });
    assert.deepEqual(cniErrorResponse(new TypeError('x is undefined')), { status: 500, body: { code: 999, msg: 'x is undefined' } });
  });

  it('includes details only when the error has them', () => {
    assert.deepEqual(cniErrorResponse(new CniError(CniErrorCode.InvalidConfig, 'bad', 'field mtu')).body, { code: 7, msg: 'bad', details: 'field mtu' });
    assert.equal('details' in (cniErrorResponse(new CniError(CniErrorCode.InvalidConfig, 'bad')).body as object), false);
  });

  it('turns a thrown string into its text', () => {
    assert.deepEqual(cniErrorResponse('plain failure'), { status: 500, body: { code: 999, msg: 'plain failure' } });
  });

  it('maps a thrown undefined or null to an internal error instead of throwing itself', () => {
    assert.equal(cniErrorResponse(undefined).status, 500);
    assert.equal(cniErrorResponse(null).status, 500);
  });
});
