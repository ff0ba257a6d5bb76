import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_AGENT_SOCKET, parseNetConf } from '../../cni/src/validate.js';

const deploy = resolve(dirname(fileURLToPath(import.meta.url)), '../../deploy');
const file = resolve(deploy, '10-podnet.conflist');
const chainedFile = resolve(deploy, 'examples/10-podnet-chained.conflist');

interface Conflist {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
}

describe('deploy/10-podnet.conflist', () => {
  const list = JSON.parse(readFileSync(file, 'utf8')) as Conflist;
  const chained = JSON.parse(readFileSync(chainedFile, 'utf8')) as Conflist;

  it('runs at 1.1.0 where the runtime\'s libcni reads cniVersions and at 1.0.0 where it does not, with podnet alone: nothing it needs is missing where podnet is installed', () => {
    // libcni >= 1.2 (containerd 2.x: 1.3.0 in 2.1) runs the list at the
    // highest entry of cniVersions it speaks: 1.1.0, with GC and STATUS.
    // libcni 1.1.2 (containerd 1.6 and 1.7, which Kubernetes 1.34 still
    // supports) ignores cniVersions and rejects a 1.1.0 result
    // ("unsupported CNI result version"), so cniVersion stays 1.0.0.
    assert.equal(list.cniVersion, '1.0.0');
    assert.deepEqual(list.cniVersions, ['1.0.0', '1.1.0']);
    assert.equal(list.name, 'podnet');
    // A chained plugin that is not installed fails every ADD, and libcni
    // stops a DEL at it before podnet's own DEL runs.
    assert.deepEqual(list.plugins.map((p) => p.type), ['podnet']);
  });

  it('has an example that chains portmap, bandwidth and tuning after podnet, for nodes that have the reference plugins, with the same versions', () => {
    // The pinned reference plugins (1.10.0) accept 1.1.0; Debian 12's 1.1.1 did not.
    assert.equal(chained.cniVersion, list.cniVersion);
    assert.deepEqual(chained.cniVersions, list.cniVersions);
    assert.equal(chained.name, 'podnet');
    assert.deepEqual(chained.plugins.map((p) => p.type), ['podnet', 'portmap', 'bandwidth', 'tuning']);
    // Host ports are portmap's there: podnet does not ask for them too.
    const { capabilities: _own, ...alone } = list.plugins[0]!;
    assert.deepEqual(chained.plugins[0], alone);
  });

  it('asks the runtime for portMappings for podnet, which serves hostPorts itself', () => {
    assert.deepEqual(list.plugins[0]!['capabilities'], { portMappings: true });
    assert.equal(chained.plugins[0]!['capabilities'], undefined, 'not where portmap serves them');
  });

  it('gives podnet a config the entry point accepts, as the runtime assembles it', () => {
    const first = list.plugins[0]!;
    // libcni adds the list's cniVersion and name to each plugin's config.
    const conf = parseNetConf(JSON.stringify({ ...first, cniVersion: list.cniVersion, name: list.name }));
    assert.equal(conf.agentSocket, DEFAULT_AGENT_SOCKET);
    assert.equal(conf.stateDir, '/var/lib/podnet');
  });

  it('declares the capabilities portmap and bandwidth need, with SNAT for hairpin port mappings', () => {
    const byType = new Map(chained.plugins.map((p) => [p.type, p]));
    assert.deepEqual(byType.get('portmap')?.['capabilities'], { portMappings: true });
    assert.equal(byType.get('portmap')?.['snat'], true);
    assert.deepEqual(byType.get('bandwidth')?.['capabilities'], { bandwidth: true });
  });
});
