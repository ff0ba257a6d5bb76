/** --host-routing without a kernel: the setting, auto's resolution and the forwarding check. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildAgentConfig, settingsFromEnv } from '../../agent/src/config/index.js';
import { POD_OBJECT, hostRoutingProblem, resolveHostRouting } from '../../agent/src/datapath/index.js';
import { parsePool } from '../../agent/src/ipam/index.js';

describe('host routing', () => {
  it('auto is bpf with services on and kernel with services off; explicit modes are kept', () => {
    assert.equal(resolveHostRouting('auto', true), 'bpf');
    assert.equal(resolveHostRouting('auto', false), 'kernel');
    for (const services of [true, false]) {
      assert.equal(resolveHostRouting('bpf', services), 'bpf');
      assert.equal(resolveHostRouting('kernel', services), 'kernel');
    }
  });

  it('is read from the flag, PODNET_HOST_ROUTING and the file key, defaults to auto, and rejects other values', () => {
    assert.equal(buildAgentConfig({}, 'n').hostRouting, 'auto');
    assert.equal(buildAgentConfig({ hostRouting: 'kernel' }, 'n').hostRouting, 'kernel');
    assert.deepEqual(settingsFromEnv({ PODNET_HOST_ROUTING: 'bpf' }), { hostRouting: 'bpf' });
    assert.throws(() => buildAgentConfig({ hostRouting: 'legacy' }, 'n'), /invalid config host-routing: "legacy" must be auto, bpf or kernel/);
  });

  it('sets the pod object constant only for kernel host routing', () => {
    const pool = parsePool('10.9.0.0/24');
    assert.equal(POD_OBJECT.constants({ pool, hostRouting: 'kernel' })['pn_host_routing_kernel'], 1);
    assert.equal(POD_OBJECT.constants({ pool, hostRouting: 'bpf' })['pn_host_routing_kernel'], 0);
    assert.equal(POD_OBJECT.constants({ pool })['pn_host_routing_kernel'], 0, 'bpf when unset');
  });

  it('kernel host routing names ip_forward when the host does not forward; bpf host routing does not need it', () => {
    assert.match(hostRoutingProblem('kernel', () => '0\n') ?? '', /net\.ipv4\.ip_forward is 0.*set net\.ipv4\.ip_forward=1/);
    assert.equal(hostRoutingProblem('kernel', () => '1\n'), undefined);
    assert.equal(hostRoutingProblem('bpf', () => '0\n'), undefined);
    const enoent = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    assert.equal(hostRoutingProblem('kernel', () => { throw enoent; }), 'read net.ipv4.ip_forward: ENOENT');
  });
});
