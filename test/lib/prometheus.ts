/**
 * Real Prometheus for end-to-end tests: a private server on loopback (own
 * config and TSDB in a temporary directory, stopped by its PID), promtool's
 * metrics lint and config check, and a small reader of the text exposition
 * format so tests can look at exact series.
 *
 * The binaries are Prometheus built from its Go module by the test harness
 * (scripts/harness/build.sh prometheus, version in versions.env), with
 * kubernetes_sd: Debian's 2.42 has none, so its promtool rejects
 * deploy/prometheus/scrape-config.yaml. `make test` builds them first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { harnessBinariesSync, harnessBinary } from '../e2e/tools/harness.js';

/** One sample of the text exposition format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A port on 127.0.0.1 that was free a moment ago: bound to port 0, read, released. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses the text exposition format (comments skipped) into samples; throws on a line it cannot read. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
  const label = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '' || raw.startsWith('#')) continue;
    const m = line.exec(raw);
    if (!m) throw new Error(`parse metrics: unreadable line ${JSON.stringify(raw)}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    label.lastIndex = 0;
    while (label.lastIndex < body.length) {
      const l = label.exec(body);
      if (!l) throw new Error(`parse metrics: unreadable labels in ${JSON.stringify(raw)}`);
      labels[l[1]!] = unescapeLabel(l[2]!);
    }
    const v = m[3]!;
    // Prometheus reads floats as Go's ParseFloat does: NaN in any case
    // (prom-client writes "Nan").
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : /^nan$/i.test(v) ? NaN : Number(v);
    if (Number.isNaN(value) && !/^nan$/i.test(v)) throw new Error(`parse metrics: bad value in ${JSON.stringify(raw)}`);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** The samples named `name` whose labels include every pair of `match`. */
export function findSamples(samples: Sample[], name: string, match: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** GETs a URL on loopback and returns status and body, bounded to `timeoutMs`. */
export async function httpGet(url: string, timeoutMs = 5000): Promise<{ status: number; body: string; contentType: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

/** Paths of the harness-built `prometheus` and `promtool`; builds them when missing (blocking). */
export function prometheusBinaries(): { prometheus: string; promtool: string } {
  const bins = harnessBinariesSync('prometheus');
  return { prometheus: harnessBinary(bins, 'prometheus'), promtool: harnessBinary(bins, 'promtool') };
}

/** Runs `promtool check metrics` on an exposition body; code 0 means lint clean. Bounded to 20 s. */
export function promtoolCheckMetrics(body: string): { code: number | null; output: string } {
  const r = spawnSync(prometheusBinaries().promtool, ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw new Error(`run promtool check metrics: ${r.error.message}`, { cause: r.error });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * Runs `promtool check config` on a Prometheus configuration file (files it
 * names, such as a kubeconfig_file, must exist); code 0 means valid.
 * Bounded to 20 s.
 */
export function promtoolCheckConfig(path: string): { code: number | null; output: string } {
  const r = spawnSync(prometheusBinaries().promtool, ['check', 'config', path], { encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw new Error(`run promtool check config ${path}: ${r.error.message}`, { cause: r.error });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** One element of an instant query's vector result. */
export interface VectorSample {
  metric: Record<string, string>;
  value: number;
}

/** Options of PrometheusServer.start. */
export interface PrometheusOptions {
  /** Scrape targets as host:port. */
  targets: string[];
  /** job label of the scrape config. */
  job: string;
  /** Scrape (and evaluation) interval in seconds; default 1. */
  intervalSeconds?: number;
  /** How long to wait for /-/ready; default 30 s. */
  readyTimeoutMs?: number;
}

/** A private Prometheus server on 127.0.0.1 with its own config and TSDB; stop() it in an after hook. */
export class PrometheusServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void>;

  private constructor(
    readonly dir: string,
    readonly port: number,
    child: ChildProcess,
  ) {
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** PID of the server process (undefined once stopped). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Base URL, e.g. http://127.0.0.1:9090. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Writes a config, starts `prometheus` on a free loopback port and waits until /-/ready answers 200. Stops it again on failure. */
  static async start(opts: PrometheusOptions): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'pn-prom-'));
    const interval = `${opts.intervalSeconds ?? 1}s`;
    const config = [
      'global:',
      `  scrape_interval: ${interval}`,
      `  evaluation_interval: ${interval}`,
      'scrape_configs:',
      `  - job_name: ${JSON.stringify(opts.job)}`,
      `    scrape_timeout: ${interval}`,
      '    static_configs:',
      `      - targets: [${opts.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
      '',
    ].join('\n');
    writeFileSync(join(dir, 'prometheus.yml'), config);
    let server: PrometheusServer | undefined;
    const log = openSync(join(dir, 'prometheus.log'), 'w');
    try {
      const port = await freePort();
      const child = spawn(
        prometheusBinaries().prometheus,
        [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
        { cwd: dir, stdio: ['ignore', log, log] },
      );
      server = new PrometheusServer(dir, port, child);
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', () => resolve());
        child.once('error', (err) => reject(new Error(`start prometheus: ${err.message}`, { cause: err })));
      });
      const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
      for (;;) {
        if (child.exitCode !== null) throw new Error(`start prometheus: exited with ${child.exitCode}:\n${server.log()}`);
        const ok = await httpGet(`${server.url}/-/ready`, 1000).then((r) => r.status === 200, () => false);
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`start prometheus: not ready after ${opts.readyTimeoutMs ?? 30_000} ms:\n${server.log()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      return server;
    } catch (err) {
      if (server) await server.stop();
      else rmSync(dir, { recursive: true, force: true });
      throw err;
    } finally {
      closeSync(log);
    }
  }

  /** The server's log so far (for failure messages). */
  log(): string {
    try {
      return readFileSync(join(this.dir, 'prometheus.log'), 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  }

  /** Runs an instant query through the HTTP API and returns its vector. Throws on an API error. */
  async query(expr: string): Promise<VectorSample[]> {
    const r = await httpGet(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = JSON.parse(r.body) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (body.status !== 'success' || body.data?.resultType !== 'vector') throw new Error(`query ${expr}: ${r.status} ${body.error ?? r.body}`);
    return body.data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  /** Sends SIGTERM to the server's PID, waits up to 10 s (then SIGKILL), and removes its directory. Safe to call twice. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
