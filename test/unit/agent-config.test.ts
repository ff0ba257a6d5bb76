import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULTS, KNOWN_KEYS, SETTINGS, buildAgentConfig, parseListenAddr, readConfigFile, settingsFromEnv } from '../../agent/src/config/index.js';
import { settingsTable, withSettingsTable } from '../../agent/src/config/readme.js';
import { ConfigError } from '../../agent/src/errors/index.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Asserts that `fn` throws a ConfigError naming `field`, with a message that says so. */
function throwsField(fn: () => unknown, field: string, msg?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.equal(err.code, 'INVALID_CONFIG');
    assert.ok(err.message.startsWith(`invalid config ${field}: `), err.message);
    if (msg) assert.match(err.message, msg);
    return true;
  });
}

describe('buildAgentConfig defaults', () => {
  it('fills every setting with its documented default when nothing is given', () => {
    const cfg = buildAgentConfig({}, 'node-1');
    assert.deepEqual({ ...cfg }, {
      nodeName: 'node-1',
      podCidr: undefined,
      bpffs: DEFAULTS.bpffs,
      stateDir: DEFAULTS.stateDir,
      apiSocket: DEFAULTS.apiSocket,
      metrics: { host: '0.0.0.0', port: 19962 },
      source: { kind: 'kubernetes', kubeconfig: undefined },
      uplink: undefined,
      cgroupRoot: undefined,
      logLevel: 'info',
      bpfDir: undefined,
      attachMode: 'clsact',
      mtu: 1500,
      reconcileIntervalSeconds: 30,
      metricsPodLabels: true,
      services: true,
      hostRouting: 'auto',
      serviceCidrs: ['10.96.0.0/12'],
      nodePortAddresses: undefined,
      lbMapSize: 65536,
      ctMapSize: 262144,
    });
    assert.equal(DEFAULTS.bpffs, '/sys/fs/bpf/podnet');
    assert.equal(DEFAULTS.stateDir, '/var/lib/podnet');
    assert.equal(DEFAULTS.apiSocket, '/run/podnet/agent.sock');
  });

  it('reads metrics-pod-labels as a boolean from flags, env strings and files, and names it when it is neither', () => {
    assert.equal(buildAgentConfig({ metricsPodLabels: false }, 'n').metricsPodLabels, false);
    assert.equal(buildAgentConfig({ metricsPodLabels: 'false' }, 'n').metricsPodLabels, false);
    assert.equal(buildAgentConfig({ metricsPodLabels: 'true' }, 'n').metricsPodLabels, true);
    assert.throws(() => buildAgentConfig({ metricsPodLabels: 'sometimes' }, 'n'), /invalid config metrics-pod-labels: "sometimes" must be true or false/);
  });

  it('treats empty strings and null as unset', () => {
    const cfg = buildAgentConfig({ nodeName: '', bpffs: null, logLevel: '', uplink: '', mtu: null }, 'host-a');
    assert.equal(cfg.nodeName, 'host-a');
    assert.equal(cfg.bpffs, DEFAULTS.bpffs);
    assert.equal(cfg.logLevel, 'info');
    assert.equal(cfg.uplink, undefined);
    assert.equal(cfg.mtu, 1500);
  });

  it('prefers an explicit node name over the hostname', () => {
    assert.equal(buildAgentConfig({ nodeName: 'worker-7.example' }, 'ignored').nodeName, 'worker-7.example');
  });

  it('returns a frozen object', () => {
    const cfg = buildAgentConfig({}, 'node-1');
    assert.equal(Object.isFrozen(cfg), true);
    assert.throws(() => { (cfg as { mtu: number }).mtu = 9000; }, TypeError);
    assert.equal(cfg.mtu, 1500);
  });

  it('freezes nested settings too, so no component can change another one\'s view', () => {
    const cfg = buildAgentConfig({ source: 'file:/etc/podnet/services.yaml', podCidr: '10.244.1.0/24' }, 'node-1');
    assert.equal(Object.isFrozen(cfg.metrics), true, 'cfg.metrics is frozen');
    assert.equal(Object.isFrozen(cfg.source), true, 'cfg.source is frozen');
  });
});

describe('buildAgentConfig accepted values', () => {
  it('parses the pod CIDR into a pool', () => {
    const cfg = buildAgentConfig({ podCidr: '10.244.1.0/24' }, 'node-1');
    assert.equal(cfg.podCidr?.cidr, '10.244.1.0/24');
    assert.equal(cfg.podCidr?.prefixLen, 24);
    assert.equal(cfg.podCidr?.size, 254);
  });

  it('reads standalone mode from source file:PATH', () => {
    const cfg = buildAgentConfig({ source: 'file:/etc/podnet/services.yaml', podCidr: '10.244.0.0/16' }, 'node-1');
    assert.deepEqual(cfg.source, { kind: 'file', path: '/etc/podnet/services.yaml' });
  });

  it('accepts every log level and attach mode it documents', () => {
    for (const logLevel of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
      assert.equal(buildAgentConfig({ logLevel }, 'n').logLevel, logLevel);
    }
    for (const attachMode of ['auto', 'tcx', 'clsact']) {
      assert.equal(buildAgentConfig({ attachMode }, 'n').attachMode, attachMode);
    }
  });

  it('accepts the MTU as a number or a digit string, inclusive bounds 576 and 65535', () => {
    assert.equal(buildAgentConfig({ mtu: 576 }, 'n').mtu, 576);
    assert.equal(buildAgentConfig({ mtu: 65535 }, 'n').mtu, 65535);
    assert.equal(buildAgentConfig({ mtu: '9000' }, 'n').mtu, 9000);
  });

  it('keeps uplink, bpf dir and absolute paths as given', () => {
    const cfg = buildAgentConfig({ uplink: 'eth0', bpfDir: '/opt/podnet/bpf', bpffs: '/sys/fs/bpf/pn2', stateDir: '/tmp/pn', apiSocket: '/tmp/pn/a.sock' }, 'n');
    assert.equal(cfg.uplink, 'eth0');
    assert.equal(cfg.bpfDir, '/opt/podnet/bpf');
    assert.equal(cfg.bpffs, '/sys/fs/bpf/pn2');
    assert.equal(cfg.stateDir, '/tmp/pn');
    assert.equal(cfg.apiSocket, '/tmp/pn/a.sock');
  });

  it('turns metrics off with "off"', () => {
    assert.equal(buildAgentConfig({ metricsAddr: 'off' }, 'n').metrics, undefined);
    assert.deepEqual(buildAgentConfig({ metricsAddr: '127.0.0.1:9100' }, 'n').metrics, { host: '127.0.0.1', port: 9100 });
  });
});

describe('buildAgentConfig validation names the field as the flag is spelled', () => {
  it('rejects an invalid node name, also one that came from the hostname', () => {
    throwsField(() => buildAgentConfig({ nodeName: 'Node_1' }, 'ok'), 'node-name', /"Node_1"/);
    throwsField(() => buildAgentConfig({}, 'UPPER.case'), 'node-name', /"UPPER\.case"/);
    throwsField(() => buildAgentConfig({ nodeName: '-lead' }, 'ok'), 'node-name');
    throwsField(() => buildAgentConfig({ nodeName: 'trail-' }, 'ok'), 'node-name');
    throwsField(() => buildAgentConfig({ nodeName: 'a'.repeat(254) }, 'ok'), 'node-name');
    throwsField(() => buildAgentConfig({ nodeName: 42 }, 'ok'), 'node-name', /expected a string, got number/);
  });

  it('rejects a bad pod CIDR', () => {
    throwsField(() => buildAgentConfig({ podCidr: 'ten/8' }, 'n'), 'pod-cidr', /not a CIDR/);
    throwsField(() => buildAgentConfig({ podCidr: '10.244.1.1/24' }, 'n'), 'pod-cidr', /host bits/);
    throwsField(() => buildAgentConfig({ podCidr: 'fd00::/64' }, 'n'), 'pod-cidr', /IPv6/);
    throwsField(() => buildAgentConfig({ podCidr: '10.0.0.0/31' }, 'n'), 'pod-cidr', /prefix length/);
  });

  it('rejects an unknown source and an empty file: source', () => {
    throwsField(() => buildAgentConfig({ source: 'etcd' }, 'n'), 'source', /"etcd"/);
    throwsField(() => buildAgentConfig({ source: 'file:' }, 'n'), 'source');
  });

  it('requires the pod CIDR in standalone mode', () => {
    throwsField(() => buildAgentConfig({ source: 'file:/x.yaml' }, 'n'), 'pod-cidr', /standalone/);
  });

  it('rejects an unknown log level and attach mode', () => {
    throwsField(() => buildAgentConfig({ logLevel: 'verbose' }, 'n'), 'log-level', /"verbose"/);
    throwsField(() => buildAgentConfig({ attachMode: 'xdp' }, 'n'), 'attach-mode', /"xdp"/);
    throwsField(() => buildAgentConfig({ attachMode: 1 }, 'n'), 'attach-mode', /expected a string/);
  });

  it('rejects an MTU out of range, fractional, or not a number', () => {
    for (const mtu of [575, 65536, 1500.5, 0, -1, 'abc', '1400.0', true, NaN]) {
      throwsField(() => buildAgentConfig({ mtu }, 'n'), 'mtu', /between 576 and 65535/);
    }
  });

  it('rejects an uplink that is not an interface name', () => {
    for (const uplink of ['eth/0', 'a'.repeat(16), 'has space', 'eth0:1']) {
      throwsField(() => buildAgentConfig({ uplink }, 'n'), 'uplink');
    }
  });

  it('rejects relative paths for bpffs, state dir and API socket', () => {
    throwsField(() => buildAgentConfig({ bpffs: 'sys/fs/bpf' }, 'n'), 'bpffs', /absolute path/);
    throwsField(() => buildAgentConfig({ stateDir: './state' }, 'n'), 'state-dir', /absolute path/);
    throwsField(() => buildAgentConfig({ apiSocket: 'agent.sock' }, 'n'), 'api-socket', /absolute path/);
  });

  it('rejects a non-string bpf dir and a bad metrics address', () => {
    throwsField(() => buildAgentConfig({ bpfDir: { a: 1 } }, 'n'), 'bpf-dir', /expected a string, got a mapping/);
    throwsField(() => buildAgentConfig({ metricsAddr: '9962' }, 'n'), 'metrics-addr');
    throwsField(() => buildAgentConfig({ metricsAddr: 9962 }, 'n'), 'metrics-addr', /expected a string/);
  });
});

describe('parseListenAddr', () => {
  it('reads ":port" as every IPv4 address', () => {
    assert.deepEqual(parseListenAddr(':9962'), { host: '0.0.0.0', port: 9962 });
  });

  it('reads host:port, a bracketed IPv6 host, and port 0', () => {
    assert.deepEqual(parseListenAddr('127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 });
    assert.deepEqual(parseListenAddr('localhost:80'), { host: 'localhost', port: 80 });
    assert.deepEqual(parseListenAddr('[::1]:9962'), { host: '::1', port: 9962 });
    assert.deepEqual(parseListenAddr('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListenAddr(':65535'), { host: '0.0.0.0', port: 65535 });
  });

  it('turns "off" and "none" into no listener', () => {
    assert.equal(parseListenAddr('off'), undefined);
    assert.equal(parseListenAddr('none'), undefined);
  });

  it('rejects addresses without a port, with a port out of range, or an unbracketed IPv6 host', () => {
    for (const v of ['9962', '127.0.0.1', ':65536', ':99999', ':123456', '::1:9962', 'host:', 'host:port', '']) {
      throwsField(() => parseListenAddr(v), 'metrics-addr', /is not host:port/);
    }
  });

  it('names the field it was given', () => {
    throwsField(() => parseListenAddr('nope', 'health-addr'), 'health-addr');
  });
});

describe('readConfigFile', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'pn-cfg-')); });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('reads a YAML file with kebab-case keys into camelCase settings', () => {
    const p = file('agent.yaml', [
      '# podnet agent',
      'node-name: worker-1',
      'pod-cidr: 10.244.3.0/24',
      'bpffs: /sys/fs/bpf/pn-test',
      'state-dir: /var/lib/pn-test',
      'api-socket: /run/pn-test/agent.sock',
      'metrics-addr: "127.0.0.1:9100"',
      'source: file:/etc/podnet/services.yaml',
      'uplink: eth0',
      'log-level: debug',
      'bpf-dir: /opt/podnet/bpf',
      'attach-mode: clsact',
      'mtu: 9000',
      '',
    ].join('\n'));
    const raw = readConfigFile(p);
    assert.deepEqual(raw, {
      nodeName: 'worker-1',
      podCidr: '10.244.3.0/24',
      bpffs: '/sys/fs/bpf/pn-test',
      stateDir: '/var/lib/pn-test',
      apiSocket: '/run/pn-test/agent.sock',
      metricsAddr: '127.0.0.1:9100',
      source: 'file:/etc/podnet/services.yaml',
      uplink: 'eth0',
      logLevel: 'debug',
      bpfDir: '/opt/podnet/bpf',
      attachMode: 'clsact',
      mtu: 9000,
    });
    const cfg = buildAgentConfig(raw, 'ignored');
    assert.equal(cfg.nodeName, 'worker-1');
    assert.equal(cfg.podCidr?.cidr, '10.244.3.0/24');
    assert.deepEqual(cfg.metrics, { host: '127.0.0.1', port: 9100 });
    assert.deepEqual(cfg.source, { kind: 'file', path: '/etc/podnet/services.yaml' });
    assert.equal(cfg.attachMode, 'clsact');
    assert.equal(cfg.mtu, 9000);
  });

  it('reads a JSON file with camelCase keys', () => {
    const p = file('agent.json', JSON.stringify({ nodeName: 'worker-2', mtu: 1450, metricsAddr: 'off', logLevel: 'warn' }));
    const raw = readConfigFile(p);
    assert.deepEqual(raw, { nodeName: 'worker-2', mtu: 1450, metricsAddr: 'off', logLevel: 'warn' });
    const cfg = buildAgentConfig(raw, 'ignored');
    assert.equal(cfg.metrics, undefined);
    assert.equal(cfg.mtu, 1450);
    assert.equal(cfg.logLevel, 'warn');
  });

  it('reads an empty file as no settings', () => {
    assert.deepEqual(readConfigFile(file('empty.yaml', '')), {});
    assert.deepEqual(readConfigFile(file('comment.yaml', '# nothing set\n')), {});
  });

  it('rejects an unknown key, naming it as spelled in the file and the file', () => {
    const p = file('unknown.yaml', 'node-name: a\npod-cider: 10.0.0.0/24\n');
    throwsField(() => readConfigFile(p), 'pod-cider', new RegExp(`unknown setting in ${p}`));
    const q = file('unknown.json', '{"nodeName":"a","mtU":1500}');
    throwsField(() => readConfigFile(q), 'mtU');
  });

  it('rejects a file that is not a mapping', () => {
    throwsField(() => readConfigFile(file('list.yaml', '- a\n- b\n')), 'config', /expected a mapping/);
    throwsField(() => readConfigFile(file('scalar.yaml', 'just words\n')), 'config', /expected a mapping/);
  });

  it('rejects a file that does not parse, naming the file', () => {
    const p = file('broken.yaml', 'node-name: [unclosed\n');
    throwsField(() => readConfigFile(p), 'config', new RegExp(`parse ${p}: `));
    const q = file('broken.json', '{"nodeName": "a",,}');
    throwsField(() => readConfigFile(q), 'config', new RegExp(`parse ${q}: `));
  });

  it('rejects a missing or unreadable file with the path and errno name, keeping the cause', () => {
    const missing = join(dir, 'missing.yaml');
    throwsField(() => readConfigFile(missing), 'config', new RegExp(`read ${missing}: ENOENT`));
    const sub = join(dir, 'a-directory.yaml');
    mkdirSync(sub);
    throwsField(() => readConfigFile(sub), 'config', new RegExp(`read ${sub}: EISDIR`));
    try {
      readConfigFile(missing);
      assert.fail('expected a throw');
    } catch (err) {
      assert.equal(((err as Error).cause as NodeJS.ErrnoException).code, 'ENOENT');
    }
  });
});

describe('the settings table', () => {
  it('spells every setting\'s env and file key from its flag', () => {
    for (const s of SETTINGS) {
      assert.equal(s.env, `PODNET_${s.flag.toUpperCase().replace(/-/g, '_')}`);
      assert.equal(s.key, s.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()));
      assert.ok(s.describe.length > 5 && s.describe.length < 100, `${s.flag}: a one-line description`);
    }
    assert.deepEqual([...KNOWN_KEYS].sort(), SETTINGS.map((s) => s.key).sort());
  });

  it('is where DEFAULTS come from', () => {
    assert.deepEqual({ ...DEFAULTS }, Object.fromEntries(SETTINGS.filter((s) => s.default !== undefined).map((s) => [s.key, s.default])));
    for (const s of SETTINGS) if (s.default !== undefined) assert.doesNotThrow(() => s.parse(s.default), `${s.flag} accepts its own default`);
  });

  it('generates the README\'s configuration table, and the README holds the current one', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    assert.equal(withSettingsTable(readme), readme, 'README.md is stale: run node scripts/gen-settings.mjs');
    for (const s of SETTINGS) assert.match(settingsTable(), new RegExp(`\\| \`--${s.flag}\` \\| \`${s.env}\` \\| \`${s.key}\` \\|`));
  });
});

describe('settingsFromEnv', () => {
  it('reads PODNET_<SETTING> variables only, and ignores the ones Kubernetes service links inject', () => {
    const env = {
      PODNET_POD_CIDR: '10.244.1.0/24', PODNET_MTU: '1400', PODNET_METRICS_POD_LABELS: 'false',
      PODNET_SERVICE_HOST: '10.96.0.10', PODNET_SERVICE_PORT: '9962', PODNET_PORT: 'tcp://10.96.0.10:9962', PODNET_PORT_9962_TCP_ADDR: '10.96.0.10',
      PODNET_DEMO_METRICS_PORT: '29963', PODNET_LOG_LEVEL: '', HOME: '/root',
    };
    assert.deepEqual(settingsFromEnv(env), { podCidr: '10.244.1.0/24', mtu: '1400', metricsPodLabels: 'false' });
    const cfg = buildAgentConfig({ ...settingsFromEnv(env), source: 'file:/dev/null' }, 'n');
    assert.equal(cfg.mtu, 1400);
    assert.equal(cfg.metricsPodLabels, false);
  });
});

describe('buildAgentConfig with values from the command line', () => {
  it('names a repeated flag instead of reading an array', () => {
    throwsField(() => buildAgentConfig({ mtu: ['1400', '1500'] }, 'n'), 'mtu', /^invalid config mtu: given 2 times \("1400", "1500"\); give it once$/);
    throwsField(() => buildAgentConfig({ podCidr: ['10.0.0.0/24', '10.0.1.0/24'] }, 'n'), 'pod-cidr', /given 2 times/);
  });

  it('names a non-numeric MTU as given, not as NaN or null', () => {
    throwsField(() => buildAgentConfig({ mtu: 'abc' }, 'n'), 'mtu', /^invalid config mtu: "abc" must be an integer between 576 and 65535$/);
  });
});
