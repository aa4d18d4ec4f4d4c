// The story both volumemgr pipeline tests tell, one with stand-in content agents
// and one with the real downloader and verifier: what zedagent and zedmanager would
// publish for one app with a root image and a blank data volume, and what must
// follow from it.
import * as fs from 'node:fs';
import Docker from 'dockerode';
import type { Test } from 'tap';
import type { AgentSpec } from '../../agents/agent';
import { imageIdOf } from '../../agents/volumemgr/image-driver';
import { contentStore } from '../../lib/content-store';
import {
  ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection, VolumeConfigCollection, volumeKey,
} from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { VerifyImageConfigCollection } from '../../pubsub/collections/content';
import {
  ContentTreeStatusCollection, ResolvedTagCollection, VolumeRefConfigCollection, VolumeRefStatusCollection, VolumeStatusCollection, volumeRefKey,
} from '../../pubsub/collections/volumes';
import { startAgents, type Harness } from './agent-harness';
import { ensureServices } from './services';
import { deleteFromRegistry, makeUniqueImage, pushToRegistry, registryGet, uniqueName } from './volumemgr-fakes';

export const DS = '0a0a0a0a-0000-4000-8000-000000000001';
export const CT = '0c0c0c0c-0000-4000-8000-000000000001';
export const ROOT = '0d0d0d0d-0000-4000-8000-000000000001';
export const BLANK = '0d0d0d0d-0000-4000-8000-000000000002';
export const APP = '0e0e0e0e-0000-4000-8000-000000000001';
export const rootRef = { appId: APP, volumeId: ROOT, generation: 0, localGeneration: 0, verifyOnly: false };
export const blankRef = { appId: APP, volumeId: BLANK, generation: 0, localGeneration: 0, verifyOnly: false, mountDir: '/data' };

/** What zedagent and zedmanager would publish for one app with a root image and a blank data volume. */
export async function publishConfig(h: Harness, registry: string, repo: string): Promise<() => void> {
  const ds = await h.publisher(DatastoreConfigCollection);
  const items = await h.publisher(ConfigItemValueMapCollection);
  const cts = await h.publisher(ContentTreeConfigCollection);
  const vols = await h.publisher(VolumeConfigCollection);
  const refs = await h.publisher(VolumeRefConfigCollection);
  ds.publish(DS, { id: DS, type: 'registry', url: `http://${registry}` });
  items.publish('global', { items: defaultConfigItems() });
  cts.publish(CT, { id: CT, name: 'busybox', datastoreIds: [DS], url: `${repo}:1`, format: 'container' });
  vols.publish(volumeKey(ROOT), { id: ROOT, origin: { type: 'download', contentTreeId: CT } });
  vols.publish(volumeKey(BLANK), { id: BLANK, origin: { type: 'blank' } });
  refs.publish(volumeRefKey(rootRef), rootRef);
  refs.publish(volumeRefKey(blankRef), blankRef);
  return () => {
    refs.unpublish(volumeRefKey(rootRef));
    refs.unpublish(volumeRefKey(blankRef));
    vols.unpublish(volumeKey(ROOT));
    vols.unpublish(volumeKey(BLANK));
    cts.unpublish(CT);
  };
}

/** Docker's image load events for an image id (events name the id, not the tag). */
export async function imageLoads(docker: Docker, since: number, id: string): Promise<number> {
  const stream = await docker.getEvents({ since, until: Math.ceil(Date.now() / 1000) + 1, filters: { type: ['image'], event: ['load'] } });
  let text = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString();
  return text.split('\n').filter((l) => l.trim() && l.includes(id)).length;
}

/** What answers for the downloader and verifier in a story: stand-ins, or the real agents. */
export interface ContentSide {
  /** Downloads asked for since start(). */
  downloads(): number;
  stop(): void;
}

export interface ContentAgents {
  /** Agents run beside volumemgr's side of the story (volumemgr itself included). */
  agents: AgentSpec[];
  start(h: Harness, registry: string): Promise<ContentSide>;
}

/**
 * A registry image becomes a Docker image with the expected id and a blank volume a directory;
 * a restart neither downloads nor loads again; dropping every reference removes volumes, image
 * and blobs.
 */
export async function volumeStory(t: Test, content: ContentAgents): Promise<void> {
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
  let h = await startAgents(content.agents);
  let side: ContentSide | undefined;
  let imageRef = '';
  t.teardown(async () => {
    side?.stop();
    await h.stop().catch(() => undefined);
    if (imageRef) await docker.getImage(imageRef).remove().catch(() => undefined);
    await docker.getImage(source).remove().catch(() => undefined);
  });
  side = await content.start(h, svc.registry);
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
  t.ok(side.downloads() >= 3, `manifest, config and layers downloaded (${side.downloads()})`);
  t.equal(await imageLoads(docker, since, configDigest), 1, 'loaded once');
  const latched = await h.waitFor(ResolvedTagCollection, `${CT}#0`, (v) => v !== undefined, 'latched tag');
  t.equal(latched?.digest, manifest.digest, 'the tag is latched');

  // Restart on the same directories: the verifier finds the blobs, Docker has the image.
  side.stop();
  await h.stop();
  const dirs = h.dirs;
  h = await startAgents(content.agents, { dirs });
  side = await content.start(h, svc.registry);
  const drop = await publishConfig(h, svc.registry, repo);
  await h.waitFor(VolumeRefStatusCollection, volumeRefKey(rootRef), (v) => v?.state === 'CREATED_VOLUME', 'root volume after restart');
  const blank2 = await h.waitFor(VolumeRefStatusCollection, volumeRefKey(blankRef), (v) => v?.state === 'CREATED_VOLUME', 'blank volume after restart');
  t.equal(blank2?.hostPath, blank?.hostPath, 'the same directory, found again');
  t.equal(side.downloads(), 0, 'nothing downloaded again');
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
}
