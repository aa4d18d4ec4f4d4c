// volumemgr with the real downloader and verifier agents, in-process on a real
// bus, with the real Docker engine and registry: a registry image becomes a
// Docker image with the expected id, a blank volume becomes a directory, a
// restart neither downloads nor loads again, and dropping every reference
// removes volumes, image and blobs (the same story as volumemgr-pipeline, whose
// stand-ins answer for the downloader and verifier).
import * as fs from 'node:fs';
import t from 'tap';
import Docker from 'dockerode';
import { volumemgr } from '../../agents/volumemgr/main';
import { downloader } from '../../agents/downloader/main';
import { verifier } from '../../agents/verifier/main';
import { imageIdOf } from '../../agents/volumemgr/image-driver';
import { contentStore } from '../../lib/content-store';
import {
  ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection, VolumeConfigCollection, volumeKey,
} from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { DownloaderStatusCollection, VerifyImageConfigCollection } from '../../pubsub/collections/content';
import {
  ContentTreeStatusCollection, ResolvedTagCollection, VolumeRefConfigCollection, VolumeRefStatusCollection, VolumeStatusCollection, volumeRefKey,
} from '../../pubsub/collections/volumes';
import { startAgents, type Harness } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';
import { deleteFromRegistry, makeUniqueImage, pushToRegistry, registryGet, uniqueName } from '../lib/volumemgr-fakes';
import { BLANK, CT, DS, ROOT, blankRef, imageLoads, publishConfig, rootRef } from '../lib/volumemgr-story';

/** Digests the downloader published a status for (every download it was asked for) while this harness runs. */
function countDownloads(h: Harness): Set<string> {
  const seen = new Set<string>();
  const sub = h.bus.subscribe(DownloaderStatusCollection, { agent: 'test-downloads', owner: 'downloader', create: (d) => { seen.add(d); } });
  const stop = h.stop.bind(h);
  h.stop = async () => { sub.close(); await stop(); };
  return seen;
}

t.test('with the real downloader and verifier: image and blank volume created, kept across a restart, removed when unreferenced', async (t) => {
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
  const agents = [downloader, verifier, volumemgr];
  let h = await startAgents(agents);
  let imageRef = '';
  t.teardown(async () => {
    await h.stop().catch(() => undefined);
    if (imageRef) await docker.getImage(imageRef).remove().catch(() => undefined);
    await docker.getImage(source).remove().catch(() => undefined);
  });
  const downloads = countDownloads(h);
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
  t.ok(downloads.size >= 3, `manifest, config and layers downloaded (${downloads.size})`);
  t.equal(await imageLoads(docker, since, configDigest), 1, 'loaded once');
  const latched = await h.waitFor(ResolvedTagCollection, `${CT}#0`, (v) => v !== undefined, 'latched tag');
  t.equal(latched?.digest, manifest.digest, 'the tag is latched');

  // Restart on the same directories: the verifier finds the blobs, Docker has the image.
  await h.stop();
  const dirs = h.dirs;
  h = await startAgents(agents, { dirs });
  const downloadsAfter = countDownloads(h);
  const drop = await publishConfig(h, svc.registry, repo);
  await h.waitFor(VolumeRefStatusCollection, volumeRefKey(rootRef), (v) => v?.state === 'CREATED_VOLUME', 'root volume after restart');
  const blank2 = await h.waitFor(VolumeRefStatusCollection, volumeRefKey(blankRef), (v) => v?.state === 'CREATED_VOLUME', 'blank volume after restart');
  t.equal(blank2?.hostPath, blank?.hostPath, 'the same directory, found again');
  t.same([...downloadsAfter], [], 'nothing downloaded again (no DownloaderStatus at all)');
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

t.test('with the real downloader: a digest the registry does not have is an error naming the content tree and digest', async (t) => {
  const svc = ensureServices();
  const h = await startAgents([downloader, verifier, volumemgr]);
  t.teardown(() => h.stop());
  const missing = `sha256:${'0'.repeat(63)}1`;
  (await h.publisher(DatastoreConfigCollection)).publish(DS, { id: DS, type: 'registry', url: `http://${svc.registry}` });
  (await h.publisher(ConfigItemValueMapCollection)).publish('global', { items: defaultConfigItems() });
  (await h.publisher(VolumeConfigCollection)).publish(volumeKey(ROOT), { id: ROOT, origin: { type: 'download', contentTreeId: CT } });
  await h.publisher(VolumeRefConfigCollection);
  (await h.publisher(ContentTreeConfigCollection)).publish(CT, {
    id: CT, name: 'missing', datastoreIds: [DS], url: `${uniqueName('vmtest')}/nothing:1`, format: 'container', sha256: missing,
  });
  const st = await h.waitFor(ContentTreeStatusCollection, CT, (v) => !!v?.error, 'an error');
  t.match(st?.error?.error, CT);
  t.match(st?.error?.error, missing);
  t.same(st?.error?.entities?.slice(0, 2), [{ type: 'contentTree', id: CT }, { type: 'blob', id: missing }]);
  t.not(st?.state, 'LOADED');
});
