// volumemgr's drivers against the real Docker engine and the real registry:
// a docker-archive assembled from registry blobs loads as the image whose id is
// the config digest; loading again is skipped; a used image is not removed;
// volume directories are made whole or not at all.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import Docker from 'dockerode';
import { imageIdOf, listImages, loadImage, removeImage } from '../../agents/volumemgr/image-driver';
import { createVolumeDir, deleteVolumeDir, listVolumeDirs } from '../../agents/volumemgr/volume-driver';
import { ensureServices } from '../lib/services';
import { makeUniqueImage, registryGet, uniqueName } from '../lib/volumemgr-fakes';

t.test('docker-archive from registry blobs loads, is found again, and is removed only when unused', async (t) => {
  const svc = ensureServices();
  const docker = new Docker({ socketPath: svc.dockerSocket });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-drv-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [repo, tag] = svc.baseImage.split(':') as [string, string];
  const m = await registryGet(svc.registry, repo, 'manifests', tag);
  const manifest = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  const save = async (d: string): Promise<string> => {
    const file = path.join(dir, d.slice(7));
    fs.writeFileSync(file, (await registryGet(svc.registry, repo, 'blobs', d)).body);
    return file;
  };
  const configPath = await save(manifest.config.digest);
  const layerPaths = [];
  for (const l of manifest.layers) layerPaths.push(await save(l.digest));
  const prefix = `${uniqueName('zedbox-drvtest')}/`;
  const imageRef = `${prefix}busybox:1`;
  t.teardown(async () => { await docker.getImage(imageRef).remove({ force: true }).catch(() => undefined); });

  const first = await loadImage(docker, { imageRef, configDigest: manifest.config.digest, configPath, layerPaths });
  t.same(first, { imageId: manifest.config.digest, loaded: true }, 'loaded, and the image id is the config digest');
  t.equal(await imageIdOf(docker, imageRef), manifest.config.digest, 'docker image inspect agrees');
  const again = await loadImage(docker, { imageRef, configDigest: manifest.config.digest, configPath, layerPaths });
  t.equal(again.loaded, false, 'already there: not loaded again');
  t.same([...(await listImages(docker, prefix))], [[imageRef, manifest.config.digest]], 'listed by its tag prefix');

  t.equal(await removeImage(docker, imageRef), 'removed', 'our tag removed (the base image keeps its own tag)');
  t.equal(await imageIdOf(docker, imageRef), undefined, 'gone from Docker');
  t.equal(await imageIdOf(docker, svc.baseImage), manifest.config.digest, 'the shared base image is untouched');
  t.equal(await removeImage(docker, imageRef), 'removed', 'removing a missing image succeeds');
});

t.test('an image a container uses is not removed: in-use, retried later', async (t) => {
  const svc = ensureServices();
  const docker = new Docker({ socketPath: svc.dockerSocket });
  const imageRef = `${uniqueName('zedbox-drvtest')}/only:1`;
  const id = makeUniqueImage(imageRef);
  t.teardown(async () => { await docker.getImage(imageRef).remove({ force: true }).catch(() => undefined); });
  const container = await docker.createContainer({ Image: imageRef, Cmd: ['/id'], name: uniqueName('zedbox-drvtest') });
  t.teardown(async () => { await container.remove({ force: true }).catch(() => undefined); });
  t.equal(await removeImage(docker, imageRef), 'in-use', 'Docker answers 409: reported as in-use');
  t.equal(await imageIdOf(docker, imageRef), id, 'still there');
  await container.remove({ force: true });
  t.equal(await removeImage(docker, imageRef), 'removed');
  t.equal(await imageIdOf(docker, imageRef), undefined, 'gone once nothing uses it');
});

t.test('a load with a wrong config digest fails with a clear error', async (t) => {
  const svc = ensureServices();
  const docker = new Docker({ socketPath: svc.dockerSocket });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-drv-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'config');
  fs.writeFileSync(config, '{"not":"an image config"}');
  const layer = path.join(dir, 'layer');
  fs.writeFileSync(layer, 'not a tar');
  const imageRef = `${uniqueName('zedbox-drvtest')}/bad:1`;
  t.teardown(async () => { await docker.getImage(imageRef).remove({ force: true }).catch(() => undefined); });
  await t.rejects(
    loadImage(docker, { imageRef, configDigest: `sha256:${'0'.repeat(64)}`, configPath: config, layerPaths: [layer] }),
    /docker load|expected sha256:0000/,
  );
});

t.test('volume directories: created whole, found again, leftovers removed, deleted', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-vol-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const src = path.join(root, 'src.img');
  fs.writeFileSync(src, 'raw content');
  fs.chmodSync(src, 0o444);
  const vols = path.join(root, 'volumes');
  const key = '11111111-1111-1111-1111-111111111111#0#0';
  const p = await createVolumeDir(vols, key, src, 'disk.img');
  t.equal(fs.readFileSync(path.join(p, 'disk.img'), 'utf8'), 'raw content', 'holds a copy of the file');
  fs.writeFileSync(path.join(p, 'disk.img'), 'changed by the app'); // writable although the source is read-only
  t.equal(await createVolumeDir(vols, key, src, 'disk.img'), p, 'creating it again is a no-op');
  t.equal(fs.readFileSync(path.join(p, 'disk.img'), 'utf8'), 'changed by the app', 'and keeps what the app wrote');
  const blank = await createVolumeDir(vols, '22222222-2222-2222-2222-222222222222#1#2');
  t.same(fs.readdirSync(blank), [], 'a blank volume is an empty directory');
  fs.mkdirSync(path.join(vols, '.tmp-33333333-3333-3333-3333-333333333333#0#0'));
  t.same([...listVolumeDirs(vols)].sort(), [key, '22222222-2222-2222-2222-222222222222#1#2'], 'found again; the half-made one is not a volume');
  t.notOk(fs.existsSync(path.join(vols, '.tmp-33333333-3333-3333-3333-333333333333#0#0')), 'and it was removed');
  await deleteVolumeDir(p);
  await deleteVolumeDir(p);
  t.notOk(fs.existsSync(p), 'deleted (twice: idempotent)');
});
