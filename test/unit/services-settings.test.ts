import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildAgentConfig, serviceMapSizesOf } from '../../agent/src/config/index.js';
import { DEFAULT_SERVICE_MAP_SIZES } from '../../agent/src/maps/services.js';

describe('Service settings', () => {
  it('size the service maps by default exactly as the map contract does', () => {
    assert.deepEqual({ ...serviceMapSizesOf(buildAgentConfig({}, 'n')) }, { ...DEFAULT_SERVICE_MAP_SIZES });
  });

  it('scale backends and slots with --lb-map-size and conntrack with --ct-map-size', () => {
    const s = serviceMapSizesOf(buildAgentConfig({ lbMapSize: '4096', ctMapSize: 8192 }, 'n'));
    assert.equal(s.pn_services, 4096);
    assert.equal(s.pn_backends, 8192);
    assert.equal(s.pn_svc_slots, 16384);
    assert.equal(s.pn_ct, 8192);
    assert.throws(() => buildAgentConfig({ lbMapSize: 10 }, 'n'), /invalid config lb-map-size: number 10 must be an integer between 1024 and 16777216/);
  });

  it('turn Services off for running beside kube-proxy, and refuse anything but on or off', () => {
    assert.equal(buildAgentConfig({ services: 'off' }, 'n').services, false);
    assert.equal(buildAgentConfig({}, 'n').services, true);
    assert.throws(() => buildAgentConfig({ services: 'maybe' }, 'n'), /services: "maybe" must be on or off/);
  });

  it('read service CIDRs and NodePort address CIDRs as comma-separated lists and name a bad one', () => {
    const cfg = buildAgentConfig({ serviceCidr: '10.222.0.0/16, 10.223.0.0/24', nodeportAddresses: '192.168.5.0/24' }, 'n');
    assert.deepEqual(cfg.serviceCidrs, ['10.222.0.0/16', '10.223.0.0/24']);
    assert.deepEqual(cfg.nodePortAddresses, ['192.168.5.0/24']);
    assert.throws(() => buildAgentConfig({ serviceCidr: '10.96.0.1/12' }, 'n'), /service-cidr: "10.96.0.1\/12" has host bits set; did you mean 10.96.0.0\/12\?/);
    assert.throws(() => buildAgentConfig({ nodeportAddresses: 'eth0' }, 'n'), /nodeport-addresses: "eth0" is not an IPv4 CIDR/);
  });
});
