/**
 * The CNI variants the benchmarks compare. Each prepares a network
 * configuration list in a private work directory and removes what it made
 * on teardown. The reference plugins are containernetworking/plugins built
 * from their Go modules by the test harness (referencePluginDir); podnet's
 * variant starts its own agent
 * process through PODNET_HOOKS (lib/podnet-agent.ts).
 */
import { access, chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { BUILD_DIR } from '../../e2e/tools/repo.js';
import { referencePluginDir } from '../../e2e/tools/harness.js';
import { freeSubnet24, randomSuffix } from '../../e2e/tools/netns.js';
import { run } from '../../e2e/tools/proc.js';
import { writeConflist } from '../../e2e/tools/cni.js';
import { podnetAgentHooks } from './podnet-agent.js';

/** What every variant gets to prepare itself. */
export interface VariantContext {
  /** A private directory removed after the benchmark. */
  readonly workDir: string;
}

/** A variant ready to be driven: a conflist, where its plugins are, and how to undo the setup. */
export interface PreparedVariant {
  readonly name: string;
  readonly network: string;
  readonly conflist: string;
  readonly cniPath: readonly string[];
  /** The pod subnet, e.g. "10.250.17.0/24". */
  readonly subnet: string;
  /** Removes what setup (and the plugins, where they leave shared state) created. */
  teardown(): Promise<void>;
}

/** One way of wiring pods, measured by the benchmarks. */
export interface CniVariant {
  readonly name: string;
  readonly description: string;
  /** Why this variant cannot run here (printed, then skipped), or undefined. */
  unavailable(): Promise<string | undefined>;
  setup(ctx: VariantContext): Promise<PreparedVariant>;
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

async function referencePluginsMissing(names: readonly string[]): Promise<string | undefined> {
  let dir: string;
  try {
    dir = await referencePluginDir();
  } catch (e) {
    return `build the reference plugins (scripts/harness/build.sh cni-plugins): ${(e as Error).message}`;
  }
  for (const n of names) {
    if (!(await isExecutable(join(dir, n)))) return `reference plugin ${n} not found in ${dir}`;
  }
  return undefined;
}

function hostLocal(subnet: string, dataDir: string): Record<string, unknown> {
  return { type: 'host-local', ranges: [[{ subnet }]], dataDir };
}

/** The reference ptp plugin with host-local IPAM: a veth per pod, /32 host routes, no bridge. */
export function ptpHostLocal(): CniVariant {
  return {
    name: 'ptp+host-local',
    description: 'reference ptp + host-local (veth pair, host routes)',
    unavailable: () => referencePluginsMissing(['ptp', 'host-local']),
    async setup(ctx) {
      const { subnet } = await freeSubnet24();
      const network = `pnb-ptp-${randomSuffix()}`;
      const dataDir = join(ctx.workDir, `${network}-ipam`);
      const conflist = await writeConflist(ctx.workDir, {
        cniVersion: '1.0.0',
        name: network,
        plugins: [{ type: 'ptp', ipMasq: false, ipam: hostLocal(subnet, dataDir) }],
      });
      return { name: this.name, network, conflist, cniPath: [await referencePluginDir()], subnet, teardown: async () => undefined };
    },
  };
}

/** The reference bridge plugin with host-local IPAM; the bridge itself outlives DEL and is removed on teardown. */
export function bridgeHostLocal(): CniVariant {
  return {
    name: 'bridge+host-local',
    description: 'reference bridge + host-local (veth into a Linux bridge)',
    unavailable: () => referencePluginsMissing(['bridge', 'host-local']),
    async setup(ctx) {
      const { subnet } = await freeSubnet24();
      const suffix = randomSuffix();
      const network = `pnb-br-${suffix}`;
      const bridge = `pnbr${suffix}`;
      const dataDir = join(ctx.workDir, `${network}-ipam`);
      const conflist = await writeConflist(ctx.workDir, {
        cniVersion: '1.0.0',
        name: network,
        plugins: [{ type: 'bridge', bridge, isGateway: true, ipMasq: false, hairpinMode: false, ipam: hostLocal(subnet, dataDir) }],
      });
      return {
        name: this.name,
        network,
        conflist,
        cniPath: [await referencePluginDir()],
        subnet,
        teardown: async () => {
          await run('ip', ['link', 'del', bridge], { timeoutMs: 10_000 });
        },
      };
    },
  };
}

/**
 * The exec floor: a "plugin" that is node running an empty script, which
 * costs the same as `node -e 0`. Driven with DEL only (its output is not a
 * result), through the same libcni exec path as the real plugins, in the
 * same clean environment.
 */
export function nodeFloor(nodeBinary: string = process.execPath): CniVariant {
  return {
    name: 'floor: node -e 0',
    description: 'node with an empty script, exec\'d by libcni like a plugin (clean environment)',
    unavailable: async () => ((await isExecutable(nodeBinary)) ? undefined : `node binary ${nodeBinary} is not executable`),
    async setup(ctx) {
      const dir = join(ctx.workDir, 'floor-bin');
      await mkdir(dir, { recursive: true });
      const plugin = join(dir, 'node-floor');
      await writeFile(plugin, `#!${nodeBinary}\n`);
      await chmod(plugin, 0o755);
      const network = `pnb-floor-${randomSuffix()}`;
      const conflist = await writeConflist(ctx.workDir, { cniVersion: '1.0.0', name: network, plugins: [{ type: 'node-floor' }] });
      return { name: this.name, network, conflist, cniPath: [dir], subnet: '', teardown: async () => undefined };
    },
  };
}

/** Where `make build` puts podnet's CNI entry point (installed as `podnet` in the CNI bin dir). */
export const DEFAULT_PODNET_CNI = join(BUILD_DIR, 'cni', 'podnet');

/** What the podnet variant needs from podnet's agent side. */
export interface PodnetHooks {
  /**
   * Starts an agent that owns `podCidr`, with all its state (bpffs pins,
   * state dir, API socket) under `ctx.workDir`; resolves with the socket
   * the CNI entry point must talk to and a stop function that removes
   * everything the agent created.
   */
  startAgent(ctx: VariantContext & { readonly podCidr: string }): Promise<{ readonly apiSocket: string; stop(): Promise<void> }>;
  /** Extra keys for the `podnet` plugin entry of the conflist (e.g. mtu). */
  pluginConfig?(apiSocket: string): Readonly<Record<string, unknown>>;
}

/** podnet's agent hooks for the benchmarks: a private agent process per variant. */
export const PODNET_HOOKS: PodnetHooks = podnetAgentHooks;

/**
 * podnet's own CNI entry point, driven through libcni like the others.
 * The conflist says cniVersion 1.0.0, as the reference variants' do, so
 * every variant is measured at the same version.
 */
export function podnet(opts: { binary?: string; hooks?: PodnetHooks; name?: string } = {}): CniVariant {
  const binary = opts.binary ?? DEFAULT_PODNET_CNI;
  const hooks = opts.hooks ?? PODNET_HOOKS;
  return {
    name: opts.name ?? 'podnet',
    description: 'podnet CNI entry point + agent (BPF datapath)',
    async unavailable() {
      if (!(await isExecutable(binary))) return `podnet CNI entry point not built at ${binary} (run make build)`;
      return undefined;
    },
    async setup(ctx) {
      const { subnet } = await freeSubnet24();
      const dir = join(ctx.workDir, `podnet-bin-${randomSuffix()}`);
      await mkdir(dir, { recursive: true });
      await copyFile(binary, join(dir, 'podnet'));
      await chmod(join(dir, 'podnet'), 0o755);
      const agent = await hooks.startAgent({ ...ctx, podCidr: subnet });
      try {
        const network = `pnb-podnet-${randomSuffix()}`;
        const conflist = await writeConflist(ctx.workDir, {
          cniVersion: '1.0.0',
          name: network,
          plugins: [{ type: 'podnet', agentSocket: agent.apiSocket, ...(hooks.pluginConfig?.(agent.apiSocket) ?? {}) }],
        });
        return { name: this.name, network, conflist, cniPath: [dir], subnet, teardown: () => agent.stop() };
      } catch (e) {
        await agent.stop();
        throw e;
      }
    },
  };
}
