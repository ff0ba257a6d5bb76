import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordedVeths, refuseWhileRunning } from '../../agent/src/cli/cleanup.js';
import { PodnetError } from '../../agent/src/errors/index.js';

describe('podnet cleanup', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-cleanup-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the host veths of this instance in its endpoint labels and link pins only', () => {
    const stateDir = join(dir, 'state');
    const bpffs = join(dir, 'bpffs');
    mkdirSync(join(stateDir, 'endpoints'), { recursive: true });
    mkdirSync(join(bpffs, 'links', 'pod'), { recursive: true });
    writeFileSync(join(stateDir, 'endpoints', 'a.json'), JSON.stringify({ hostIfName: 'pn0123456789ab' }));
    writeFileSync(join(stateDir, 'endpoints', 'b.json'), '{"hostIfName": "eth0"}');
    writeFileSync(join(stateDir, 'endpoints', 'torn.json'), '{"hostIf');
    writeFileSync(join(bpffs, 'links', 'pnfedcba987654_ingress'), '');
    writeFileSync(join(bpffs, 'links', 'pod', 'from_pod-pn00000000000a-egress'), '');
    writeFileSync(join(bpffs, 'links', 'uplink_ingress'), '');
    assert.deepEqual(recordedVeths({ stateDir, bpffs }), ['pn00000000000a', 'pn0123456789ab', 'pnfedcba987654']);
    assert.deepEqual(recordedVeths({ stateDir: join(dir, 'none'), bpffs: join(dir, 'none') }), []);
  });

  it('refuses while another process holds the agent lock, and goes ahead once it is released', async () => {
    const stateDir = join(dir, 'locked');
    mkdirSync(stateDir, { recursive: true });
    const lock = join(stateDir, 'agent.lock');
    writeFileSync(lock, '');
    const opts = { stateDir, apiSocket: join(dir, 'no.sock') };
    await refuseWhileRunning(opts);
    // flock(1) holds the lock like the agent does, until we kill it.
    const holder = spawn('flock', ['--no-fork', '--exclusive', lock, 'sleep', '30'], { stdio: 'ignore' });
    try {
      const deadline = Date.now() + 5000;
      let refused: unknown;
      while (Date.now() < deadline) {
        refused = await refuseWhileRunning(opts).then(() => undefined, (e: unknown) => e);
        if (refused) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(refused instanceof PodnetError, `refused while the lock is held: ${String(refused)}`);
      assert.equal(refused.code, 'AGENT_RUNNING');
      assert.equal(refused.message, `clean up: an agent holds ${lock}; stop it first`);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    await refuseWhileRunning(opts);
  });
});
