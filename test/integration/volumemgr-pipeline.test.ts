// volumemgr in-process on a real bus, with the real Docker engine and registry:
// a registry image becomes a Docker image with the expected id, a blank volume
// becomes a directory, a restart neither downloads nor loads again, and dropping
// every reference removes volumes, image and blobs.
import * as fs from 'node:fs';
import t from 'tap';
import Docker from 'dockerode';
import { volumemgr } from '../../agents/volumemgr/main';
import { imageIdOf } from '../../agents/volumemgr/image-driver';
import { contentStore } from '../../lib/content-store';
import { VerifyImageConfigCollection } from '../../pubsub/collections/content';
import {
  ContentTreeStatusCollection, ResolvedTagCollection, VolumeRefStatusCollection, VolumeStatusCollection, volumeRefKey,
} from '../../pubsub/collections/volumes';
import { startAgents } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';
import { deleteFromRegistry, makeUniqueImage, pushToRegistry, registryGet, startFakeContentAgents, uniqueName } from '../lib/volumemgr-fakes';
import { BLANK, CT, blankRef, imageLoads, publishConfig, rootRef } from '../lib/volumemgr-story';

t.test('registry image and blank volume: created, kept across a restart, removed when unreferenced', async (t) => {
  const svc = ensureServices();
  const docker = new Docker({ socketPath: svc.dockerSocket });
  // busybox plus a unique file: an image id no other test loads, so Docker's load events are ours.
  const repo = `${uniqueName('vmtest')}/busybox`;
  const source = `${repo}:src`;
  makeUniqueImage(source, svc.baseImage);
  pushToRegistry(svc.registry, source, `${repo}:1`);
  await docker.getImage(source).remove();
  const manifest = await registryGet(svc.registry, repo, 'manifests', '1');
  const configDigest = (JSON.parse(manifest.body.toString()) as { config: { digest: string } }).config.digest;
  t.teardown(() => deleteFromRegistry(svc.registry, repo, manifest.digest));

  const since = Math.floor(Date.now() / 1000) - 1;
  let h = await startAgents([volumemgr]);
  let fakes: { stop(): void; counters: { downloads: number } } | undefined;
  let imageRef = '';
  t.teardown(async () => {
    fakes?.stop();
    await h.stop().catch(() => undefined);
    if (imageRef) await docker.getImage(imageRef).remove().catch(() => undefined);
    await docker.getImage(source).remove().catch(() => undefined);
  });
  fakes = await startFakeContentAgents(h, svc.registry);
  await publishConfig(h, svc.registry, repo);

  const root = await h.waitFor(VolumeRefStatusCollection, volumeRefKey(rootRef), (v) => v?.state === 'CREATED_VOLUME', 'root volume created');
  const ct = await h.waitFor(ContentTreeStatusCollection, CT, (v) => v?.state === 'LOADED', 'content tree loaded');
  t.equal(ct?.state, 'LOADED');
  t.equal(ct?.digest, manifest.digest, 'the tag resolved to the manifest the registry serves');
  imageRef = ct?.imageRef ?? '';
  t.match(imageRef, new RegExp(`^zedbox-${h.settings.instance}/busybox:${manifest.digest.slice(7, 19)}$`));
  t.equal(ct?.imageId, configDigest);
  t.equal(await imageIdOf(docker, imageRef), configDigest, 'docker image inspect: the expected id');
  t.same({ kind: root?.kind, imageRef: root?.imageRef, imageId: root?.imageId }, { kind: 'image', imageRef, imageId: configDigest });
  const blank = await h.waitFor(VolumeRefStatusCollection, volumeRefKey(blankRef), (v) => v?.state === 'CREATED_VOLUME', 'blank volume created');
  t.equal(blank?.mountDir, '/data');
  t.same(fs.readdirSync(blank?.hostPath ?? '/nonexistent'), [], 'the blank volume is an empty directory');
  t.equal((await h.waitFor(VolumeStatusCollection, `${BLANK}#0#0`, (v) => v !== undefined, 'blank volume status'))?.refCount, 2, 'VolumeConfig + one ref');
  t.ok(fakes.counters.downloads >= 3, `manifest, config and layers downloaded (${fakes.counters.downloads})`);
  t.equal(await imageLoads(docker, since, configDigest), 1, 'loaded once');
  const latched = await h.waitFor(ResolvedTagCollection, `${CT}#0`, (v) => v !== undefined, 'latched tag');
  t.equal(latched?.digest, manifest.digest, 'the tag is latched');

  // Restart on the same directories: the verifier finds the blobs, Docker has the image.
  fakes?.stop();
  await h.stop();
  const dirs = h.dirs;
  h = await startAgents([volumemgr], { dirs });
  fakes = await startFakeContentAgents(h, svc.registry);
  const drop = await publishConfig(h, svc.registry, repo);
  await h.waitFor(VolumeRefStatusCollection, volumeRefKey(rootRef), (v) => v?.state === 'CREATED_VOLUME', 'root volume after restart');
  const blank2 = await h.waitFor(VolumeRefStatusCollection, volumeRefKey(blankRef), (v) => v?.state === 'CREATED_VOLUME', 'blank volume after restart');
  t.equal(blank2?.hostPath, blank?.hostPath, 'the same directory, found again');
  t.equal(fakes.counters.downloads, 0, 'nothing downloaded again');
  t.equal((await h.waitFor(ContentTreeStatusCollection, CT, (v) => v?.state === 'LOADED', 'loaded after restart'))?.imageRef, imageRef);
  t.equal(await imageLoads(docker, since, configDigest), 1, 'not loaded again');

  // Every reference dropped: volumes, image and verified blobs go.
  drop();
  await h.waitFor(VolumeStatusCollection, `${BLANK}#0#0`, (v) => v === undefined, 'blank volume removed');
  await h.waitFor(ContentTreeStatusCollection, CT, (v) => v === undefined, 'content tree status removed');
  const vics = h.watch(VerifyImageConfigCollection);
  await vics.whenSynchronized();
  for (let i = 0; i < 200 && (vics.keys().length > 0 || (await imageIdOf(docker, imageRef)) !== undefined); i++) await new Promise((r) => setTimeout(r, 50));
  t.same(vics.keys(), [], 'verify configs withdrawn after the handshake');
  t.notOk(fs.existsSync(blank?.hostPath ?? ''), 'blank volume directory deleted');
  t.equal(await imageIdOf(docker, imageRef), undefined, 'our image tag removed from Docker');
  t.equal(await imageIdOf(docker, configDigest), undefined, 'the image itself is gone (nothing else tagged it)');
  t.ok(await imageIdOf(docker, svc.baseImage), 'the shared base image is untouched');
  t.same(fs.readdirSync(contentStore(dirs.persist).verified), [], 'verified blobs deleted');
  t.equal(await h.waitFor(ResolvedTagCollection, `${CT}#0`, (v) => v === undefined, 'latch released'), undefined, 'the latch is released');
});
