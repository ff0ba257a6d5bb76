import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CniError } from '../../cni/src/spec.js';
import {
  DEFAULT_AGENT_SOCKET,
  DEFAULT_STATE_DIR,
  parseCniArgs,
  parseNetConf,
  readEnv,
  validateContainerId,
  validateIfName,
} from '../../cni/src/validate.js';

/** Asserts `fn` throws a CniError with `code` whose message matches `msg`. */
function throwsCni(fn: () => unknown, code: number, msg: RegExp, label?: string): void {
  assert.throws(
    fn,
    (e: unknown) => {
      assert.ok(e instanceof CniError, `expected a CniError, got ${String(e)}`);
      assert.equal(e.cniCode, code, `${label ?? ''} code of "${e.message}"`);
      assert.match(e.message, msg, label);
      return true;
    },
    label,
  );
}

const FULL_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc123',
  CNI_NETNS: '/var/run/netns/p',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
};

describe('validateContainerId', () => {
  it('accepts ids that start alphanumeric and use letters, digits, _ . -', () => {
    for (const id of ['a', '0', 'abc_DEF.1-2', '3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755']) validateContainerId(id);
  });

  it('rejects empty ids, a leading separator and other characters with code 4 naming CNI_CONTAINERID', () => {
    for (const id of ['', '-abc', '_abc', '.abc', 'a/b', 'a b', 'a:b', 'ä']) throwsCni(() => validateContainerId(id), 4, /CNI_CONTAINERID/, JSON.stringify(id));
  });
});

describe('validateIfName', () => {
  it('accepts names of 1 to 15 bytes', () => {
    for (const n of ['e', 'eth0', 'net1.100', 'a'.repeat(15)]) validateIfName(n);
  });

  it('rejects empty, too long, dot names, slash, colon and whitespace with code 4 naming CNI_IFNAME', () => {
    for (const n of ['', 'a'.repeat(16), 'ééééééééé', '.', '..', 'eth/0', 'eth:0', 'eth 0', 'eth\t0', 'eth0\n']) {
      throwsCni(() => validateIfName(n), 4, /CNI_IFNAME/, JSON.stringify(n));
    }
  });
});

describe('parseCniArgs', () => {
  it('parses K=V pairs including the Kubernetes pod identity', () => {
    assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc'), {
      IgnoreUnknown: '1',
      K8S_POD_NAMESPACE: 'default',
      K8S_POD_NAME: 'web-0',
      K8S_POD_INFRA_CONTAINER_ID: 'abc',
    });
  });

  it('accepts an empty string, empty segments and empty values', () => {
    assert.deepEqual(parseCniArgs(''), {});
    assert.deepEqual(parseCniArgs('A=1;;B=;'), { A: '1', B: '' });
  });

  it('keeps everything after the first = as the value', () => {
    assert.deepEqual(parseCniArgs('A=b=c'), { A: 'b=c' });
  });

  it('rejects a pair without = or with a bad key with code 4 naming CNI_ARGS', () => {
    for (const raw of ['A', 'A=1;B', '=1', 'A B=1', 'K8S-POD=1']) throwsCni(() => parseCniArgs(raw), 4, /CNI_ARGS/, raw);
  });
});

describe('readEnv', () => {
  it('reads a complete ADD environment', () => {
    const env = readEnv({ ...FULL_ENV, CNI_ARGS: 'K8S_POD_NAME=p' });
    assert.deepEqual({ ...env, args: { ...env.args } }, {
      command: 'ADD',
      containerId: 'abc123',
      netns: '/var/run/netns/p',
      ifName: 'eth0',
      args: { K8S_POD_NAME: 'p' },
      path: '/opt/cni/bin',
    });
    assert.ok(Object.isFrozen(env));
  });

  it('names CNI_COMMAND when it is missing or unknown, with code 4', () => {
    throwsCni(() => readEnv({}), 4, /CNI_COMMAND: not set/);
    throwsCni(() => readEnv({ ...FULL_ENV, CNI_COMMAND: 'INIT' }), 4, /CNI_COMMAND: unknown command "INIT"/);
    throwsCni(() => readEnv({ ...FULL_ENV, CNI_COMMAND: 'add' }), 4, /CNI_COMMAND/);
  });

  const required: Record<string, string[]> = {
    ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
    CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
    DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
    GC: ['CNI_PATH'],
    STATUS: ['CNI_PATH'],
  };
  for (const [command, vars] of Object.entries(required)) {
    for (const name of vars) {
      it(`${command} without ${name} fails with code 4 naming ${name}`, () => {
        const env: Record<string, string> = { ...FULL_ENV, CNI_COMMAND: command };
        delete env[name];
        throwsCni(() => readEnv(env), 4, new RegExp(`${name} required for ${command}`));
        // An empty value counts as missing, as in the reference skel.
        throwsCni(() => readEnv({ ...env, [name]: '' }), 4, new RegExp(name));
      });
    }
  }

  it('lets DEL run without CNI_NETNS and GC/STATUS/VERSION without container variables', () => {
    assert.equal(readEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a', CNI_IFNAME: 'eth0', CNI_PATH: '/x' }).netns, '');
    assert.equal(readEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }).command, 'GC');
    assert.equal(readEnv({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }).command, 'STATUS');
    assert.equal(readEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
  });

  it('validates the container id and interface name of ADD', () => {
    throwsCni(() => readEnv({ ...FULL_ENV, CNI_CONTAINERID: '-bad' }), 4, /CNI_CONTAINERID/);
    throwsCni(() => readEnv({ ...FULL_ENV, CNI_IFNAME: 'a-very-long-ifname' }), 4, /CNI_IFNAME/);
    throwsCni(() => readEnv({ ...FULL_ENV, CNI_ARGS: 'novalue' }), 4, /CNI_ARGS/);
  });
});

describe('parseNetConf', () => {
  const base = { cniVersion: '1.1.0', name: 'podnet', type: 'podnet' };
  const parse = (o: unknown): ReturnType<typeof parseNetConf> => parseNetConf(JSON.stringify(o));

  it('fills the defaults and freezes the result', () => {
    const c = parse(base);
    assert.deepEqual({ ...c }, { cniVersion: '1.1.0', name: 'podnet', type: 'podnet', agentSocket: DEFAULT_AGENT_SOCKET, stateDir: DEFAULT_STATE_DIR });
    assert.equal(DEFAULT_AGENT_SOCKET, '/run/podnet/agent.sock');
    assert.equal(DEFAULT_STATE_DIR, '/var/lib/podnet');
    assert.ok(Object.isFrozen(c));
  });

  it('reads agentSocket, stateDir, mtu and runtimeConfig', () => {
    const c = parse({ ...base, agentSocket: '/tmp/a.sock', stateDir: '/tmp/s', mtu: 1450, runtimeConfig: { portMappings: [] } });
    assert.equal(c.agentSocket, '/tmp/a.sock');
    assert.equal(c.stateDir, '/tmp/s');
    assert.equal(c.mtu, 1450);
    assert.deepEqual(c.runtimeConfig, { portMappings: [] });
  });

  it('rejects input that is not a JSON object with code 6', () => {
    for (const text of ['', '{', 'not json', '[]', '"s"', 'null', '42']) throwsCni(() => parseNetConf(text), 6, /decode network config/, text);
  });

  it('names a missing cniVersion, name or type with code 7', () => {
    for (const field of ['cniVersion', 'name', 'type'] as const) {
      const o: Record<string, unknown> = { ...base };
      delete o[field];
      throwsCni(() => parse(o), 7, new RegExp(`invalid config ${field}`), field);
      throwsCni(() => parse({ ...base, [field]: 5 }), 7, new RegExp(`invalid config ${field}`), field);
    }
  });

  it('rejects a type other than podnet with code 7', () => {
    throwsCni(() => parse({ ...base, type: 'bridge' }), 7, /invalid config type: "bridge" is not "podnet"/);
  });

  it('rejects a network name with bad characters with code 7', () => {
    throwsCni(() => parse({ ...base, name: 'pod net' }), 7, /validate name/);
  });

  it('rejects an unsupported cniVersion with code 1', () => {
    for (const v of ['0.3.1', '0.2.0', '2.0.0', '1.1', 'latest']) {
      throwsCni(() => parse({ ...base, cniVersion: v }), 1, /cniVersion/, v);
    }
  });

  it('rejects an mtu that is not an integer in 68..65535 with code 7 naming mtu', () => {
    for (const mtu of [67, 0, -1, 65536, 1500.5, '1500', true]) throwsCni(() => parse({ ...base, mtu }), 7, /invalid config mtu/, String(mtu));
    assert.equal(parse({ ...base, mtu: 68 }).mtu, 68);
    assert.equal(parse({ ...base, mtu: 65535 }).mtu, 65535);
  });

  it('rejects relative or overlong paths for agentSocket and stateDir with code 7', () => {
    throwsCni(() => parse({ ...base, agentSocket: 'run/agent.sock' }), 7, /invalid config agentSocket/);
    throwsCni(() => parse({ ...base, agentSocket: `/${'a'.repeat(120)}` }), 7, /invalid config agentSocket/);
    throwsCni(() => parse({ ...base, stateDir: 3 }), 7, /invalid config stateDir/);
  });

  it('normalises a prevResult and rejects a malformed one naming prevResult', () => {
    const c = parse({ ...base, cniVersion: '0.4.0', prevResult: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.2/24' }] } });
    assert.deepEqual(c.prevResult, { cniVersion: '1.1.0', interfaces: [], ips: [{ address: '10.1.0.2/24' }], routes: [], dns: {} });
    throwsCni(() => parse({ ...base, prevResult: [] }), 7, /prevResult/);
  });

  it('ignores prevResult when asked not to read it', () => {
    assert.equal(parseNetConf(JSON.stringify({ ...base, prevResult: 'garbage' }), { readPrevResult: false }).prevResult, undefined);
  });

  it('reads cni.dev/valid-attachments, falling back to cni.dev/attachments', () => {
    const items = [
      { containerID: 'c1', ifname: 'eth0' },
      { containerID: 'c2', ifname: 'net1' },
    ];
    const want = [
      { containerId: 'c1', ifName: 'eth0' },
      { containerId: 'c2', ifName: 'net1' },
    ];
    assert.deepEqual(parse({ ...base, 'cni.dev/valid-attachments': items }).validAttachments, want);
    assert.deepEqual(parse({ ...base, 'cni.dev/attachments': items }).validAttachments, want);
    assert.equal(parse(base).validAttachments, undefined);
  });

  it('rejects malformed valid attachments with code 7 naming the item', () => {
    throwsCni(() => parse({ ...base, 'cni.dev/valid-attachments': {} }), 7, /cni\.dev\/valid-attachments/);
    throwsCni(() => parse({ ...base, 'cni.dev/valid-attachments': [{ ifname: 'eth0' }] }), 7, /valid-attachments\[0\]\.containerID/);
    throwsCni(() => parse({ ...base, 'cni.dev/valid-attachments': [{ containerID: 'c', ifname: 'x/y' }] }), 7, /valid-attachments\[0\]\.ifname/);
  });
});
