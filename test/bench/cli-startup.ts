/**
 * CLI start-up: wall time of `podnet status` (against a tiny fake agent
 * socket in another process) and `podnet version`, against `node -e 0`,
 * every process in a clean environment (env -i PATH=/usr/bin:/bin), runs
 * interleaved in rotating order. Prints medians, p90 and the ratio to node.
 * The target: `podnet status` within 1.5x `node -e 0`.
 *
 *   node --import tsx test/bench/cli-startup.ts [--runs N] [--podnet PATH]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NOISE_NOTE, fmt, formatTable, machineInfo, percentile, printJsonSummary, ratio, rotation } from './lib/index.js';
import { intOption } from './lib/args.js';

const REPO = resolve(fileURLToPath(import.meta.url), '../../..');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const runs = intOption('runs', opt('--runs'), 60);
const podnet = resolve(opt('--podnet') ?? join(REPO, 'bin/podnet'));
const CLEAN_ENV = { PATH: '/usr/bin:/bin' };

// A fake agent: answers /v1/status like a ready agent, from its own process
// (spawnSync blocks this one's event loop).
const FAKE_AGENT = `
const { createServer } = require('node:http');
const status = { version: '0.1.0', nodeName: 'bench', ready: true, datapathMode: 'clsact', bpffs: '/sys/fs/bpf/podnet',
  podCidr: '10.244.1.0/24', ipam: { size: 253, used: 0, free: 253 }, endpoints: 0, endpointsUnhealthy: 0, lastReconcile: null, uptimeSeconds: 1 };
const s = createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(status)); });
s.listen(process.argv[1], () => process.stdout.write('ready\\n'));
setTimeout(() => process.exit(0), 600000).unref();
process.on('SIGTERM', () => s.close(() => process.exit(0)));
`;

interface Variant { name: string; cmd: string[] }

async function main(): Promise<void> {
  if (!existsSync(join(REPO, 'build/podnet.mjs'))) throw new Error('build/podnet.mjs is missing: run make build first');
  const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-cli-'));
  const sock = join(dir, 'agent.sock');
  const agent = spawn(process.execPath, ['-e', FAKE_AGENT, sock], { env: CLEAN_ENV, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error('fake agent did not start within 10 s')), 10_000);
      agent.stdout!.once('data', () => { clearTimeout(t); res(); });
      agent.once('exit', (c) => { clearTimeout(t); rej(new Error(`fake agent exited with ${c}`)); });
    });
    const variants: Variant[] = [
      { name: 'node -e 0', cmd: [process.execPath, '-e', '0'] },
      { name: 'podnet status', cmd: [podnet, 'status', '--api-socket', sock] },
      { name: 'podnet version', cmd: [podnet, 'version', '--api-socket', sock] },
      { name: 'podnet --help (yargs)', cmd: [podnet, '--help'] },
    ];
    // Each variant once before measuring: the page cache holds every file after that.
    for (const v of variants) spawnSync(v.cmd[0]!, v.cmd.slice(1), { env: CLEAN_ENV, stdio: 'ignore' });
    const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    for (let r = 0; r < runs; r++) {
      for (const v of rotation(variants, r)) {
        const t0 = process.hrtime.bigint();
        const res = spawnSync(v.cmd[0]!, v.cmd.slice(1), { env: CLEAN_ENV, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (res.status !== 0) throw new Error(`${v.name} exited ${res.status}: ${res.stderr.toString()}`);
        samples.get(v.name)!.push(ms);
      }
    }
    const base = percentile(samples.get('node -e 0')!, 50);
    const rows = variants.map((v) => {
      const s = samples.get(v.name)!;
      const p50 = percentile(s, 50);
      return [v.name, p50, percentile(s, 90), ratio(p50, base)] as const;
    });
    console.log(`CLI start-up, ${runs} interleaved runs each, env -i PATH=/usr/bin:/bin (ms)\n`);
    console.log(formatTable(['command', 'p50', 'p90', 'x node -e 0'], rows.map((r) => [r[0], r[1], r[2], r[3]])));
    console.log(`\ntarget: podnet status <= 1.5x node -e 0 -> ${fmt(rows[1]![3])}x\n${NOISE_NOTE}`);
    printJsonSummary({ bench: 'cli-startup', runs, machine: machineInfo(), results: rows.map((r) => ({ command: r[0], p50Ms: r[1], p90Ms: r[2], ratioToNode: r[3] })) });
  } finally {
    agent.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
