import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { checkMetricsAddr, checkPrivileges, effectiveCaps, mergeSettings } from '../../agent/src/cli/agent-run.js';
import { PodnetError } from '../../agent/src/errors/index.js';

const cap = (...bits: number[]): bigint => bits.reduce((m, b) => m | (1n << BigInt(b)), 0n);

describe('agent start-up checks', () => {
  it('reads the effective capabilities from /proc/self/status text', () => {
    assert.equal(effectiveCaps('Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n'), 0x1ffffffffffn);
    assert.equal(effectiveCaps('CapEff:\t0000000000000000\n'), 0n);
    assert.equal(effectiveCaps('no caps here'), 0n);
  });

  it('refuses without CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN, naming what is missing', () => {
    const refuses = (caps: bigint, missing: string): void => {
      assert.throws(() => checkPrivileges(caps, 1000), (e: unknown) => {
        assert.ok(e instanceof PodnetError);
        assert.equal(e.code, 'PERMISSION');
        assert.equal(e.message, `start agent: needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); uid 1000 lacks ${missing}`);
        return true;
      });
    };
    refuses(0n, 'CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN');
    refuses(cap(12, 39), 'CAP_SYS_ADMIN');
    refuses(cap(21, 39), 'CAP_NET_ADMIN');
    assert.doesNotThrow(() => checkPrivileges(cap(12, 21, 39), 0));
    assert.doesNotThrow(() => checkPrivileges(cap(12, 21), 0), 'CAP_SYS_ADMIN covers bpf() on kernels without CAP_BPF');
  });

  it('names metrics-addr when its port is taken, and lets a free port or "off" pass', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (holder.address() as AddressInfo).port;
    try {
      await assert.rejects(checkMetricsAddr({ host: '127.0.0.1', port }), (e: unknown) => {
        assert.ok(e instanceof PodnetError);
        assert.equal(e.code, 'IN_USE');
        assert.equal(e.message, `listen on metrics-addr 127.0.0.1:${port}: EADDRINUSE: another process holds the port; set --metrics-addr (PODNET_METRICS_ADDR) to a free one or "off"`);
        return true;
      });
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
    await checkMetricsAddr({ host: '127.0.0.1', port });
    await checkMetricsAddr(undefined);
  });

  it('merges flags over PODNET_* env over the file, ignoring env names that are not settings', () => {
    assert.deepEqual(
      mergeSettings({ mtu: '1400' }, { PODNET_MTU: '1300', PODNET_POD_CIDR: '10.0.0.0/24', PODNET_SERVICE_HOST: '10.96.0.1' }, { mtu: 1200, podCidr: '10.1.0.0/24', nodeName: 'from-file' }),
      { mtu: '1400', podCidr: '10.0.0.0/24', nodeName: 'from-file' },
    );
  });
});
