import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgentClient, type AgentClient } from '../../cni/src/agent-client.js';
import { runCni, type Timeouts } from '../../cni/src/dispatch.js';
import { CANNED_RESULT, startFakeAgent, type FakeAgent } from '../../cni/test/fake-agent.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** The parsed stdout, when it is JSON. */
  json: Record<string, unknown> | undefined;
  stdinRead: boolean;
  agentCalls: number;
}

let dir: string;
let agent: FakeAgent;

/** Runs the dispatcher in-process against the fake agent (or any client from `agentFor`). */
async function run(
  env: Record<string, string>,
  conf: unknown,
  opts: { agentFor?: (socket: string) => AgentClient; timeouts?: Partial<Timeouts> } = {},
): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let stdinRead = false;
  const before = agent.requests.length;
  const code = await runCni({
    env,
    readStdin: () => {
      stdinRead = true;
      return typeof conf === 'string' ? conf : JSON.stringify(conf);
    },
    writeStdout: (t) => (stdout += t),
    writeStderr: (t) => (stderr += t),
    agent: opts.agentFor ?? createAgentClient,
    ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
  });
  let json: Record<string, unknown> | undefined;
  try {
    json = stdout ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json, stdinRead, agentCalls: agent.requests.length - before };
}

function conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.1.0', name: 'podnet', type: 'podnet', agentSocket: agent.socketPath, stateDir: join(dir, 'state'), ...extra };
}

const ADD_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'ctr1',
  CNI_NETNS: '/var/run/netns/pod1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
};
const env = (command: string, extra: Record<string, string> = {}): Record<string, string> => ({ ...ADD_ENV, CNI_COMMAND: command, ...extra });

function assertError(r: Run, code: number, msg: RegExp): void {
  assert.equal(r.code, 1, `exit status, stdout: ${r.stdout}`);
  assert.equal(r.json?.['code'], code, `code in ${r.stdout}`);
  assert.match(String(r.json?.['msg']), msg);
  assert.equal(typeof r.json?.['cniVersion'], 'string');
  assert.ok(r.stdout.endsWith('\n'));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pn-cni-dispatch-'));
  agent = await startFakeAgent(dir);
});
after(async () => {
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  rmSync(join(dir, 'state'), { recursive: true, force: true });
  // Restore the canned answers a test may have replaced.
  agent.on('POST /v1/cni/add', () => ({ status: 200, body: CANNED_RESULT }));
  agent.on('POST /v1/cni/del', () => ({ status: 200, body: {} }));
  agent.on('POST /v1/cni/check', () => ({ status: 200, body: {} }));
  agent.on('POST /v1/cni/gc', () => ({ status: 200, body: {} }));
  agent.on('GET /v1/cni/status', () => ({ status: 200, body: {} }));
});

describe('VERSION', () => {
  it('prints the supported versions without reading stdin or calling the agent', async () => {
    const r = await run({ CNI_COMMAND: 'VERSION' }, 'not even json');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\n');
    assert.equal(r.stdinRead, false);
    assert.equal(r.agentCalls, 0);
  });
});

describe('environment and config validation', () => {
  it('rejects an unknown CNI_COMMAND with code 4 naming CNI_COMMAND', async () => {
    const r = await run(env('INIT'), conf());
    assertError(r, 4, /CNI_COMMAND/);
    assert.equal(r.agentCalls, 0);
  });

  it('names each missing variable with code 4 before reading stdin or calling the agent', async () => {
    const cases: Array<[string, string]> = [
      ['ADD', 'CNI_CONTAINERID'],
      ['ADD', 'CNI_NETNS'],
      ['ADD', 'CNI_IFNAME'],
      ['ADD', 'CNI_PATH'],
      ['CHECK', 'CNI_NETNS'],
      ['DEL', 'CNI_CONTAINERID'],
      ['DEL', 'CNI_IFNAME'],
      ['GC', 'CNI_PATH'],
      ['STATUS', 'CNI_PATH'],
    ];
    for (const [command, name] of cases) {
      const e = env(command);
      delete e[name];
      const r = await run(e, conf());
      assertError(r, 4, new RegExp(name));
      assert.equal(r.stdinRead, false, `${command} without ${name} read stdin`);
      assert.equal(r.agentCalls, 0);
    }
  });

  it('rejects an invalid interface name with code 4 naming CNI_IFNAME', async () => {
    assertError(await run(env('ADD', { CNI_IFNAME: 'eth0:1' }), conf()), 4, /CNI_IFNAME/);
  });

  it('rejects an invalid container id with code 4 naming CNI_CONTAINERID', async () => {
    assertError(await run(env('DEL', { CNI_CONTAINERID: '../etc' }), conf()), 4, /CNI_CONTAINERID/);
  });

  it('rejects a bad CNI_ARGS pair with code 4 naming CNI_ARGS', async () => {
    const r = await run(env('ADD', { CNI_ARGS: 'K8S_POD_NAME=a;garbage' }), conf());
    assertError(r, 4, /CNI_ARGS/);
    assert.equal(r.agentCalls, 0);
  });

  it('rejects bad JSON on stdin with code 6', async () => {
    const r = await run(env('ADD'), '{"cniVersion": "1.1.0",');
    assertError(r, 6, /decode network config/);
    assert.equal(r.agentCalls, 0);
  });

  it('rejects an unsupported cniVersion with code 1', async () => {
    const r = await run(env('ADD'), conf({ cniVersion: '0.3.1' }));
    assertError(r, 1, /cniVersion/);
    assert.equal(r.agentCalls, 0);
  });

  it('rejects a bad mtu with code 7 naming mtu', async () => {
    const r = await run(env('ADD'), conf({ mtu: 40 }));
    assertError(r, 7, /mtu/);
    assert.equal(r.agentCalls, 0);
  });

  it('rejects a config for another plugin type with code 7', async () => {
    assertError(await run(env('ADD'), conf({ type: 'ptp' })), 7, /type/);
  });

  it('prints errors in the config cniVersion', async () => {
    const r = await run(env('ADD'), conf({ cniVersion: '0.4.0', mtu: 'big' }));
    assert.equal(r.json?.['cniVersion'], '0.4.0');
  });

  it('reports a stdin read failure with code 5', async () => {
    let stdout = '';
    const code = await runCni({
      env: env('ADD'),
      readStdin: () => {
        throw new Error('EIO');
      },
      writeStdout: (t) => (stdout += t),
      writeStderr: () => {},
      agent: createAgentClient,
    });
    assert.equal(code, 1);
    assert.equal((JSON.parse(stdout) as { code: number }).code, 5);
  });
});

describe('ADD', () => {
  it('sends the exact add request and prints the 1.1.0 result', async () => {
    const r = await run(env('ADD'), conf({ mtu: 1450 }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stderr, '');
    const req = agent.requests.at(-1)!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/v1/cni/add');
    assert.deepEqual(req.body, {
      containerId: 'ctr1',
      netns: '/var/run/netns/pod1',
      ifName: 'eth0',
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0' },
      network: 'podnet',
      cniVersion: '1.1.0',
      mtu: 1450,
    });
    assert.deepEqual(r.json, { ...CANNED_RESULT });
  });

  it('passes runtimeConfig.portMappings to the agent as the runtime sent them, for the agent to validate', async () => {
    const portMappings = [{ hostPort: 54323, containerPort: 8080, protocol: 'TCP', hostIP: '127.0.0.1' }, { hostPort: 0 }];
    const r = await run(env('ADD'), conf({ runtimeConfig: { portMappings } }));
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual((agent.requests.at(-1)!.body as Record<string, unknown>)['portMappings'], portMappings);
    await run(env('DEL'), conf({ runtimeConfig: { portMappings } }));
    assert.equal(agent.requests.at(-1)!.url, '/v1/cni/del');
    assert.ok(!('portMappings' in (agent.requests.at(-1)!.body as Record<string, unknown>)), 'DEL needs none');
    const prevResult = { cniVersion: '1.1.0', interfaces: [], ips: [{ address: '10.244.0.5/32' }], routes: [], dns: {} };
    await run(env('CHECK'), conf({ runtimeConfig: { portMappings }, prevResult }));
    assert.deepEqual((agent.requests.at(-1)!.body as Record<string, unknown>)['portMappings'], portMappings);
  });

  it('omits mtu from the request when the config has none', async () => {
    await run(env('ADD', { CNI_ARGS: '' }), conf());
    const body = agent.requests.at(-1)!.body as Record<string, unknown>;
    assert.ok(!('mtu' in body));
    assert.deepEqual(body['args'], {});
  });

  it('converts the result for a 1.0.0 config', async () => {
    const r = await run(env('ADD'), conf({ cniVersion: '1.0.0' }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal((agent.requests.at(-1)!.body as { cniVersion: string }).cniVersion, '1.0.0');
    assert.deepEqual(r.json, {
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'pn3f2a9c1d', mac: '6e:7a:01:02:03:04' },
        { name: 'eth0', mac: '0a:58:0a:f4:00:05', sandbox: '/var/run/netns/pod1' },
      ],
      ips: [
        { address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 1 },
        { address: 'fd00:10:244::5/128', interface: 1 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
      dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
    });
  });

  it('converts the result for a 0.4.0 config with IP versions', async () => {
    const r = await run(env('ADD'), conf({ cniVersion: '0.4.0' }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.json?.['cniVersion'], '0.4.0');
    assert.deepEqual(r.json?.['ips'], [
      { version: '4', address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 1 },
      { version: '6', address: 'fd00:10:244::5/128', interface: 1 },
    ]);
  });

  it('appends its result to a prevResult and fixes the interface indexes', async () => {
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'macvlan0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/pod1' }],
      ips: [{ version: '4', address: '192.168.10.7/24', gateway: '192.168.10.1', interface: 0 }],
      routes: [{ dst: '192.168.0.0/16', gw: '192.168.10.1' }],
      dns: { nameservers: ['192.168.10.1'] },
    };
    const r = await run(env('ADD'), conf({ cniVersion: '0.4.0', prevResult }));
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(r.json, {
      cniVersion: '0.4.0',
      interfaces: [
        { name: 'macvlan0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/pod1' },
        { name: 'pn3f2a9c1d', mac: '6e:7a:01:02:03:04' },
        { name: 'eth0', mac: '0a:58:0a:f4:00:05', sandbox: '/var/run/netns/pod1' },
      ],
      ips: [
        { version: '4', address: '192.168.10.7/24', gateway: '192.168.10.1', interface: 0 },
        { version: '4', address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 2 },
        { version: '6', address: 'fd00:10:244::5/128', interface: 2 },
      ],
      routes: [
        { dst: '192.168.0.0/16', gw: '192.168.10.1' },
        { dst: '0.0.0.0/0', gw: '169.254.1.1' },
      ],
      dns: { nameservers: ['192.168.10.1', '10.96.0.10'], search: ['svc.cluster.local'] },
    });
  });

  it('fails with code 11 naming the socket when no agent listens', async () => {
    const socket = join(dir, 'nobody.sock');
    const r = await run(env('ADD'), conf({ agentSocket: socket }));
    assertError(r, 11, /try again later/);
    assert.ok(String(r.json?.['msg']).includes(socket), r.stdout);
  });

  it('fails with code 11 when the agent does not answer in time', async () => {
    agent.on('POST /v1/cni/add', () => 'hang');
    const r = await run(env('ADD'), conf(), { timeouts: { add: 150 } });
    assertError(r, 11, /no answer within 150 ms/);
  });

  it('passes the agent CNI error through', async () => {
    agent.on('POST /v1/cni/add', () => ({ status: 500, body: { cniVersion: '1.1.0', code: 100, msg: 'allocate IP: pool 10.244.0.0/24 exhausted' } }));
    const r = await run(env('ADD'), conf({ cniVersion: '1.0.0' }));
    assertError(r, 100, /pool 10\.244\.0\.0\/24 exhausted/);
    assert.equal(r.json?.['cniVersion'], '1.0.0');
  });

  it('reports an answer that is not a CNI error as code 999 with the HTTP status', async () => {
    agent.on('POST /v1/cni/add', () => ({ status: 502, text: 'bad gateway' }));
    const r = await run(env('ADD'), conf());
    assertError(r, 999, /HTTP 502/);
    assert.equal(r.json?.['details'], 'bad gateway');
  });

  it('reports a malformed agent result as code 999', async () => {
    agent.on('POST /v1/cni/add', () => ({ status: 200, body: { interfaces: 'eth0' } }));
    assertError(await run(env('ADD'), conf()), 999, /agent result\.interfaces/);
  });
});

describe('DEL', () => {
  it('sends the exact del request, prints nothing and exits 0', async () => {
    const r = await run(env('DEL'), conf());
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '');
    const req = agent.requests.at(-1)!;
    assert.equal(req.url, '/v1/cni/del');
    assert.deepEqual(req.body, {
      containerId: 'ctr1',
      netns: '/var/run/netns/pod1',
      ifName: 'eth0',
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0' },
      network: 'podnet',
      cniVersion: '1.1.0',
    });
  });

  it('omits netns when the runtime did not pass one', async () => {
    const e = env('DEL');
    delete e['CNI_NETNS'];
    const r = await run(e, conf({ prevResult: CANNED_RESULT }));
    assert.equal(r.code, 0, r.stdout);
    assert.ok(!('netns' in (agent.requests.at(-1)!.body as object)));
  });

  it('succeeds even when the runtime passes a malformed prevResult', async () => {
    const r = await run(env('DEL'), conf({ prevResult: { ips: 'garbage' } }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(agent.requests.at(-1)!.url, '/v1/cni/del');
  });

  it('queues the request and exits 0 when the agent is down', async () => {
    const socket = join(dir, 'down.sock');
    const r = await run(env('DEL', { CNI_CONTAINERID: 'ctr-9.x_y' }), conf({ agentSocket: socket, mtu: 1400 }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
    const qdir = join(dir, 'state', 'del-queue');
    const file = join(qdir, 'ctr-9.x_y-eth0.json');
    assert.match(r.stderr, /agent unreachable \(ENOENT on .*down\.sock\); queued in .*ctr-9\.x_y-eth0\.json/);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {
      containerId: 'ctr-9.x_y',
      netns: '/var/run/netns/pod1',
      ifName: 'eth0',
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0' },
      network: 'podnet',
      cniVersion: '1.1.0',
      mtu: 1400,
    });
    assert.equal(statSync(qdir).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(qdir), ['ctr-9.x_y-eth0.json'], 'no temporary files left');
  });

  it('queues the request when the agent does not answer in time', async () => {
    agent.on('POST /v1/cni/del', () => 'hang');
    const r = await run(env('DEL'), conf(), { timeouts: { del: 150 } });
    assert.equal(r.code, 0, r.stdout);
    assert.ok(existsSync(join(dir, 'state', 'del-queue', 'ctr1-eth0.json')));
  });

  it('fails with code 5 when the agent is down and the queue cannot be written', async () => {
    // A regular file where the state directory should be makes mkdir fail.
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, '');
    try {
      const r = await run(env('DEL'), conf({ agentSocket: join(dir, 'down.sock'), stateDir: blocker }));
      assertError(r, 5, /queueing the DEL failed/);
    } finally {
      rmSync(blocker, { force: true });
    }
  });

  it('passes an agent error through instead of queueing', async () => {
    agent.on('POST /v1/cni/del', () => ({ status: 500, body: { code: 999, msg: 'detach program: EBUSY' } }));
    const r = await run(env('DEL'), conf());
    assertError(r, 999, /EBUSY/);
    assert.ok(!existsSync(join(dir, 'state', 'del-queue')));
  });
});

describe('CHECK', () => {
  it('sends the prevResult normalised to 1.x shape', async () => {
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/pod1' }],
      ips: [{ version: '4', address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
      dns: {},
    };
    const r = await run(env('CHECK'), conf({ cniVersion: '0.4.0', prevResult }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
    const req = agent.requests.at(-1)!;
    assert.equal(req.url, '/v1/cni/check');
    assert.deepEqual(req.body, {
      containerId: 'ctr1',
      netns: '/var/run/netns/pod1',
      ifName: 'eth0',
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0' },
      network: 'podnet',
      cniVersion: '0.4.0',
      prevResult: {
        cniVersion: '1.1.0',
        interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/pod1' }],
        ips: [{ address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 0 }],
        routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
        dns: {},
      },
    });
  });

  it('fails with code 7 naming prevResult when there is none', async () => {
    const r = await run(env('CHECK'), conf());
    assertError(r, 7, /prevResult/);
    assert.equal(r.agentCalls, 0);
  });

  it('passes a failed check from the agent through', async () => {
    agent.on('POST /v1/cni/check', () => ({ status: 409, body: { code: 999, msg: 'check eth0: address 10.244.0.5/32 missing' } }));
    assertError(await run(env('CHECK'), conf({ prevResult: CANNED_RESULT })), 999, /address 10\.244\.0\.5\/32 missing/);
  });

  it('fails with code 11 when the agent is down', async () => {
    assertError(await run(env('CHECK'), conf({ prevResult: CANNED_RESULT, agentSocket: join(dir, 'down.sock') })), 11, /try again later/);
  });
});

describe('GC', () => {
  const attachments = [
    { containerID: 'ctr1', ifname: 'eth0' },
    { containerID: 'ctr2', ifname: 'eth0' },
  ];
  const gcEnv = { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' };

  it('sends the valid attachments', async () => {
    const r = await run(gcEnv, conf({ 'cni.dev/valid-attachments': attachments }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
    const req = agent.requests.at(-1)!;
    assert.equal(req.url, '/v1/cni/gc');
    assert.deepEqual(req.body, {
      network: 'podnet',
      cniVersion: '1.1.0',
      validAttachments: [
        { containerId: 'ctr1', ifName: 'eth0' },
        { containerId: 'ctr2', ifName: 'eth0' },
      ],
    });
  });

  it('sends an empty list when the runtime says nothing is valid', async () => {
    const r = await run(gcEnv, conf({ 'cni.dev/valid-attachments': [] }));
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual((agent.requests.at(-1)!.body as { validAttachments: unknown[] }).validAttachments, []);
  });

  it('is rejected with code 1 for 0.4.0 and 1.0.0 configs', async () => {
    for (const v of ['0.4.0', '1.0.0']) {
      const r = await run(gcEnv, conf({ cniVersion: v, 'cni.dev/valid-attachments': attachments }));
      assertError(r, 1, /GC needs cniVersion 1\.1\.0/);
      assert.equal(r.agentCalls, 0);
    }
  });

  it('refuses to run without the valid attachments list, with code 7', async () => {
    const r = await run(gcEnv, conf());
    assertError(r, 7, /cni\.dev\/valid-attachments/);
    assert.equal(r.agentCalls, 0);
  });

  it('fails with code 11 when the agent is down', async () => {
    assertError(await run(gcEnv, conf({ 'cni.dev/valid-attachments': [], agentSocket: join(dir, 'down.sock') })), 11, /try again later/);
  });
});

describe('STATUS', () => {
  const statusEnv = { CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' };

  it('asks the agent and exits 0 with no output when it is ready', async () => {
    const r = await run(statusEnv, conf());
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
    const req = agent.requests.at(-1)!;
    assert.equal(req.method, 'GET');
    assert.equal(req.url, '/v1/cni/status');
    assert.equal(req.text, '');
  });

  it('fails with code 50 when the agent is down', async () => {
    assertError(await run(statusEnv, conf({ agentSocket: join(dir, 'down.sock') })), 50, /no agent listening/);
  });

  it('passes the agent not-ready answer through', async () => {
    agent.on('GET /v1/cni/status', () => ({ status: 503, body: { code: 50, msg: 'agent not ready: datapath loading' } }));
    assertError(await run(statusEnv, conf()), 50, /datapath loading/);
  });

  it('is rejected with code 1 for a 1.0.0 config', async () => {
    const r = await run(statusEnv, conf({ cniVersion: '1.0.0' }));
    assertError(r, 1, /STATUS needs cniVersion 1\.1\.0/);
    assert.equal(r.agentCalls, 0);
  });
});
