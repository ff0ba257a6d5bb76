/**
 * podnet's agent for the benchmarks: started as its own process from the
 * checkout (`bin/podnet agent`), exactly as a node would run it, with every
 * pin, file and socket private to the benchmark's work directory.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { apiCall } from '../../../agent/src/api/client.js';
import { REPO_ROOT } from '../../e2e/tools/repo.js';
import type { PodnetHooks } from './variants.js';

const stateDirOf = (apiSocket: string): string => join(dirname(apiSocket), 'state');

/** Hooks that start a private agent process per benchmark variant (Services from `servicesFile`, none by default). */
export const podnetAgentHooks: PodnetHooks = agentHooks();

/**
 * Agent hooks with a Services file of the benchmark's own: the agent
 * reloads it when the benchmark renames a new one over it. `serviceCidr`
 * must be blackholed by the caller before anything is sent into it.
 */
export function podnetAgentHooksWithServices(servicesFile: string, serviceCidr: string): PodnetHooks {
  return agentHooks({ servicesFile, serviceCidr });
}

function agentHooks(svc?: { servicesFile: string; serviceCidr: string }): PodnetHooks {
  return {
    async startAgent(ctx) {
      // One directory per agent: a benchmark may run several podnet variants side by side.
      const dir = join(ctx.workDir, `podnet-agent-${randomBytes(4).toString('hex')}`);
      const apiSocket = join(dir, 'agent.sock');
      const bpffs = `/sys/fs/bpf/podnet-bench-${randomBytes(4).toString('hex')}`;
      const child = spawn(join(REPO_ROOT, 'bin', 'podnet'), [
        'agent', '--node-name', 'bench-node', '--pod-cidr', ctx.podCidr, '--source', `file:${svc?.servicesFile ?? '/dev/null'}`,
        ...(svc ? ['--service-cidr', svc.serviceCidr] : []),
        '--bpffs', bpffs, '--state-dir', stateDirOf(apiSocket), '--api-socket', apiSocket,
        '--metrics-addr', 'off', '--log-level', 'warn',
      ], { stdio: ['ignore', 'ignore', 'inherit'] });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const stop = async (): Promise<void> => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(t);
        }
        // The agent leaves its datapath pinned on purpose; a benchmark removes it.
        rmSync(bpffs, { recursive: true, force: true });
        rmSync(dir, { recursive: true, force: true });
      };
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (child.exitCode !== null) {
          await stop();
          throw new Error(`start podnet agent: exited with ${child.exitCode} during start-up`);
        }
        if (existsSync(apiSocket)) {
          const ready = await apiCall<{ ready: boolean }>(apiSocket, 'GET', '/v1/status', undefined, 1000).then((s) => s.ready, () => false);
          if (ready) break;
        }
        if (Date.now() > deadline) {
          await stop();
          throw new Error('start podnet agent: not ready within 30 s');
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return { apiSocket, stop };
    },
    pluginConfig: (apiSocket) => ({ stateDir: stateDirOf(apiSocket) }),
  };
}
