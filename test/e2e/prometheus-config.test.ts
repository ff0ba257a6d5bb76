/**
 * The shipped Prometheus scrape config (deploy/prometheus/scrape-config.yaml)
 * as the real promtool reads it: the harness-built Prometheus has
 * kubernetes_sd, so the file's kubernetes_sd_configs, selectors and relabel
 * rules are checked by Prometheus's own config loader. No server runs and no
 * traffic is sent.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './tools/index.js';
import { prometheusBinaries, promtoolCheckConfig } from '../lib/prometheus.js';

const SHIPPED = join(REPO_ROOT, 'deploy', 'prometheus', 'scrape-config.yaml');

describe('the shipped Prometheus scrape config under promtool', () => {
  let work = '';
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'pn-promcfg-'));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the harness-built promtool is a Prometheus 3 with kubernetes service discovery compiled in', () => {
    const r = spawnSync(prometheusBinaries().promtool, ['--version'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^promtool, version 3\.\d+\.\d+ /m);
    assert.match(r.stdout, /tags:\s+.*enable_kubernetes_sd/);
  });

  test('promtool check config accepts deploy/prometheus/scrape-config.yaml with its kubernetes_sd_configs', () => {
    const r = promtoolCheckConfig(SHIPPED);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  test('promtool check config rejects the same file with an unknown kubernetes_sd role, so the check can fail', async () => {
    const text = await readFile(SHIPPED, 'utf8');
    assert.match(text, /- role: pod\n/);
    const broken = join(work, 'bad-role.yaml');
    await writeFile(broken, text.replace('- role: pod\n', '- role: pods\n'));
    const r = promtoolCheckConfig(broken);
    assert.notEqual(r.code, 0, `promtool accepted an unknown role: ${r.output}`);
    assert.match(r.output, /unknown Kubernetes SD role "pods"/i);
  });

  test('promtool check config accepts the file with a kubeconfig_file added, as a Prometheus outside the cluster runs it', async () => {
    const text = await readFile(SHIPPED, 'utf8');
    const outside = join(work, 'outside.yaml');
    await writeFile(outside, text.replace('      - role: pod\n', `      - role: pod\n        kubeconfig_file: ${join(work, 'kubeconfig')}\n`));
    assert.notEqual(await readFile(outside, 'utf8'), text, 'the kubeconfig_file line went in');
    const r = promtoolCheckConfig(outside);
    assert.equal(r.code, 0, r.output);
  });
});
