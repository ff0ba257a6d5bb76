/**
 * The hand-built busybox OCI archive, checked independently of containerd:
 * every blob matches the digest and size that point at it, the layer holds
 * the applets the tests call, and two builds are byte-identical.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUSYBOX_IMAGE, buildBusyboxImage, runOk } from './tools/index.js';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

describe('busybox OCI image archive', () => {
  let work = '';
  let layout = '';
  let tarA = '';

  async function blob(d: Descriptor): Promise<Buffer> {
    const [alg, hex] = d.digest.split(':');
    assert.equal(alg, 'sha256');
    const data = await readFile(join(layout, 'blobs', 'sha256', hex ?? ''));
    assert.equal(createHash('sha256').update(data).digest('hex'), hex, `${d.mediaType} content matches its digest`);
    assert.equal(data.length, d.size, `${d.mediaType} size matches its descriptor`);
    return data;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'podnet-image-'));
    layout = join(work, 'layout');
    tarA = await buildBusyboxImage(join(work, 'a.tar'));
    await mkdir(layout);
    await runOk('tar', ['-xf', tarA, '-C', layout]);
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('index, manifest, config and layer are linked by correct digests and sizes', async () => {
    assert.deepEqual(JSON.parse(await readFile(join(layout, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { schemaVersion: number; manifests: Descriptor[] };
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.manifests.length, 1);
    const mdesc = index.manifests[0] as Descriptor;
    assert.equal(mdesc.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(mdesc.annotations?.['io.containerd.image.name'], BUSYBOX_IMAGE);
    assert.equal(mdesc.annotations?.['org.opencontainers.image.ref.name'], 'test');
    assert.equal(mdesc.platform?.os, 'linux');

    const manifest = JSON.parse((await blob(mdesc)).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
    const config = JSON.parse((await blob(manifest.config)).toString('utf8')) as {
      architecture: string;
      os: string;
      rootfs: { type: string; diff_ids: string[] };
      config: { Env: string[] };
    };
    assert.equal(config.architecture, mdesc.platform?.architecture);
    assert.equal(config.rootfs.type, 'layers');
    assert.equal(manifest.layers.length, 1);
    const layer = manifest.layers[0] as Descriptor;
    assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar');
    await blob(layer);
    assert.deepEqual(config.rootfs.diff_ids, [layer.digest], 'an uncompressed layer is its own diff_id');
    assert.ok(config.config.Env.includes('PATH=/bin'));
  });

  test('the layer holds a static busybox and links for every applet the tests call', async () => {
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const manifest = JSON.parse((await blob(index.manifests[0] as Descriptor)).toString('utf8')) as { layers: Descriptor[] };
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    await runOk('tar', ['-xf', join(layout, 'blobs', 'sha256', (manifest.layers[0]?.digest ?? '').slice('sha256:'.length)), '-C', rootfs]);

    const busybox = await readFile(join(rootfs, 'bin', 'busybox'));
    assert.ok(busybox.equals(await readFile('/bin/busybox')), 'the layer carries Debian busybox-static unchanged');
    assert.ok(((await stat(join(rootfs, 'bin', 'busybox'))).mode & 0o111) !== 0);
    for (const applet of ['sh', 'ping', 'ip', 'ifconfig', 'nc', 'wget', 'httpd', 'sleep', 'cat', 'hostname']) {
      assert.equal(await readlink(join(rootfs, 'bin', applet)), 'busybox', `${applet} links to busybox`);
    }
    assert.equal((await stat(join(rootfs, 'tmp'))).mode & 0o7777, 0o1777);
    assert.match(await readFile(join(rootfs, 'etc', 'passwd'), 'utf8'), /^root:x:0:0:/);
  });

  test('two builds produce the same bytes', async () => {
    const tarB = await buildBusyboxImage(join(work, 'b.tar'));
    assert.ok((await readFile(tarA)).equals(await readFile(tarB)));
  });
});
