// volumemgr's planner without I/O: each test builds a world, re-plans on the
// simulated results until nothing changes, and checks what a user would see
// (statuses, what was asked of downloader, verifier and Docker).
import t from 'tap';
import { imageRefFor } from '../../agents/volumemgr/manifest';
import { addImage, addRef, addVolume, INSTANCE, REG, round, settle, sha, WEB, world, type World } from '../lib/volumemgr-sim';

const CT = 'cccccccc-0000-0000-0000-000000000001';
const CT2 = 'cccccccc-0000-0000-0000-000000000002';
const VOL = 'dddddddd-0000-0000-0000-000000000001';
const APP = 'eeeeeeee-0000-0000-0000-000000000001';

function registryTree(w: World, id: string, url: string, extra: Partial<{ sha256: string; generation: number; name: string }> = {}): void {
  w.trees.set(id, { id, datastoreIds: [REG], url, format: 'container', ...extra });
}

t.test('a tag is resolved once and latched; a new generation resolves again', async (t) => {
  const w = world();
  const img1 = addImage(w, 'one', ['L1']);
  w.tags.set('apps/web:1', img1.top);
  registryTree(w, CT, 'apps/web:1', { name: 'web' });
  let p = settle(w);
  t.equal(p.contentTrees.get(CT)?.state, 'LOADED');
  t.equal(p.contentTrees.get(CT)?.digest, img1.top);
  t.same([...p.resolvedTags.values()].map((r) => [r.reference, r.digest]), [['apps/web:1', img1.top]], 'latched');
  t.equal(p.resolve.size, 0, 'ResolveConfig withdrawn once latched');

  const img2 = addImage(w, 'two', ['L2']);
  w.tags.set('apps/web:1', img2.top); // the tag moves in the registry
  w.rs.clear();
  p = settle(w);
  t.equal(p.contentTrees.get(CT)?.digest, img1.top, 'the latch holds: the app does not move to new content');
  t.notOk(w.log.some((l) => l.includes(img2.manifest)), 'nothing of the new content was fetched');

  registryTree(w, CT, 'apps/web:1', { name: 'web', generation: 1 });
  p = settle(w);
  t.equal(p.contentTrees.get(CT)?.digest, img2.top, 'a new generation re-resolves');
  t.same([...p.resolvedTags.keys()], [`${CT}#1`], 'the old latch is dropped');
  t.notOk(p.verify.has(img1.manifest), 'old blobs released');

  const img3 = addImage(w, 'three', ['L3']);
  w.tags.set('apps/other:1', img3.top);
  registryTree(w, CT, 'apps/other:1', { name: 'web', generation: 1 }); // a corrected url, same generation
  w.rs.clear();
  p = settle(w);
  t.equal(p.contentTrees.get(CT)?.digest, img3.top, 'a config naming another repo:tag resolves anew');
  t.same([...p.resolvedTags.values()].map((r) => r.reference), ['apps/other:1'], 'and latches that');
});

t.test('an index picks linux/amd64; the manifest expands to config and layers, then the image loads', async (t) => {
  const w = world();
  const img = addImage(w, 'multi', ['layer-a', 'layer-b'], true);
  registryTree(w, CT, 'apps/multi@' + img.top, { name: 'Multi App' });
  const p = settle(w);
  const st = p.contentTrees.get(CT);
  t.equal(st?.state, 'LOADED');
  t.same(st?.blobs.map((b) => b.digest), [img.top, img.manifest, img.config, ...img.layers], 'index, manifest, config, layers');
  t.ok(st?.blobs.every((b) => b.state === 'VERIFIED'));
  const ref = imageRefFor(INSTANCE, 'Multi App', CT, img.manifest);
  t.match(ref, /^zedbox-abcdef012345\/multi-app:[0-9a-f]{12}$/);
  t.same({ imageRef: st?.imageRef, imageId: st?.imageId }, { imageRef: ref, imageId: img.config });
  t.ok(w.log.includes(`loadImage ${ref}`), 'loaded once');
  t.notOk(w.log.some((l) => l.includes(sha('arm'))), 'the arm64 manifest is never fetched');
  const downloads = w.log.filter((l) => l.startsWith('download '));
  t.equal(downloads.length, 5, 'each blob downloaded once');
  t.equal(p.downloader.size, 0, 'downloader configs released after LOADED');
  t.same([...p.verify.values()].map((v) => v.refCount), [1, 1, 1, 1, 1], 'verified blobs held by the tree');
});

t.test('an image already in Docker with the right id is not loaded again', async (t) => {
  const w = world();
  const img = addImage(w, 'x', ['L']);
  registryTree(w, CT, `apps/x@${img.top}`);
  w.images.set(imageRefFor(INSTANCE, undefined, CT, img.manifest), img.config);
  const p = settle(w);
  t.equal(p.contentTrees.get(CT)?.state, 'LOADED');
  t.notOk(w.log.some((l) => l.startsWith('loadImage')), 'no load');
});

t.test('refcounts: blobs count content trees, volumes count config + refs, the newest instance holds the config', async (t) => {
  const w = world();
  const a = addImage(w, 'a', ['shared', 'only-a']);
  const b = addImage(w, 'b', ['shared']);
  registryTree(w, CT, `apps/a@${a.top}`);
  registryTree(w, CT2, `apps/b@${b.top}`);
  addVolume(w, { id: VOL, origin: { type: 'download', contentTreeId: CT } });
  addRef(w, { appId: APP, volumeId: VOL, generation: 0, localGeneration: 0, verifyOnly: false });
  addRef(w, { appId: 'eeeeeeee-0000-0000-0000-000000000002', volumeId: VOL, generation: 0, localGeneration: 0, verifyOnly: true });
  let p = settle(w);
  t.equal(p.verify.get(sha('shared'))?.refCount, 2, 'a shared layer counts both trees');
  t.equal(p.verify.get(sha('only-a'))?.refCount, 1);
  const key = `${VOL}#0#0`;
  t.equal(p.volumes.get(key)?.refCount, 3, '1 for the VolumeConfig + 2 refs');
  t.equal(p.volumes.get(key)?.state, 'CREATED_VOLUME');
  t.equal(p.volumes.get(key)?.kind, 'image');
  t.equal(p.contentTrees.get(CT)?.refCount, 1, 'the tree counts the volume using it');
  t.equal(p.contentTrees.get(CT2)?.refCount, 0);

  // A purge: a fresh instance (localGeneration 1) takes the config's hold; the old one lives on its ref only.
  addRef(w, { appId: APP, volumeId: VOL, generation: 0, localGeneration: 1, verifyOnly: false });
  p = settle(w);
  t.equal(p.volumes.get(`${VOL}#0#1`)?.refCount, 2);
  t.equal(p.volumes.get(key)?.refCount, 2, 'old instance: its two refs');
  w.refs.clear();
  p = settle(w);
  t.notOk(p.volumes.has(key), 'old instance removed at 0');
  t.equal(p.volumes.get(`${VOL}#0#1`)?.refCount, 1, 'the newest instance is held by its VolumeConfig');

  w.trees.delete(CT2);
  p = settle(w);
  t.equal(p.verify.get(sha('shared'))?.refCount, 1, 'released by the removed tree');
});

t.test('a blob that fails verification is fetched again up to the limit, then the error is final and named', async (t) => {
  const w = world();
  w.items['blob.download.max.retries'] = '2';
  const img = addImage(w, 'bad', ['bad-layer']);
  w.corrupt.add(sha('bad-layer'));
  registryTree(w, CT, `apps/bad@${img.top}`);
  const p = settle(w);
  const downloads = w.log.filter((l) => l.startsWith(`download ${sha('bad-layer')}`));
  t.same(downloads, [0, 1, 2].map((r) => `download ${sha('bad-layer')} retry ${r}`), 'first try plus 2 retries');
  const st = p.contentTrees.get(CT);
  t.not(st?.state, 'LOADED');
  t.match(st?.error?.error, /failed verification 3 times/);
  t.equal(st?.error?.severity, 'error', 'a final error is an error');
  t.match(st?.error?.error, CT);
  t.match(st?.error?.error, sha('bad-layer'));
  t.same(st?.error?.entities, [{ type: 'contentTree', id: CT }, { type: 'blob', id: sha('bad-layer') }]);
  t.notOk(p.downloader.has(sha('bad-layer')), 'no more downloads');
  t.notOk(p.verify.has(sha('bad-layer')), 'nothing left to verify');

  // The config is corrected (here: the content is fixed and the tree config changes): the agent forgets the failure.
  w.corrupt.clear();
  w.memory.blobs.delete(sha('bad-layer'));
  t.equal(settle(w).contentTrees.get(CT)?.state, 'LOADED', 'recovers without restart');
});

t.test('deletion handshake: refCount 0 first, unpublish only once the status is gone', async (t) => {
  const w = world();
  const img = addImage(w, 'x', ['L']);
  registryTree(w, CT, `apps/x@${img.top}`);
  settle(w);
  w.trees.delete(CT);
  // One round by hand: the verifier still has the files, so volumemgr asks for deletion.
  const { plan } = await import('../../agents/volumemgr/plan');
  const p1 = plan({
    contentTrees: w.trees, datastores: w.datastores, volumes: w.volumes, volumeRefs: w.refs, items: w.items,
    resolveStatus: w.rs, downloaderStatus: w.ds, verifyStatus: w.vis,
    published: { downloader: w.last!.downloader, verify: w.last!.verify, resolvedTags: w.last!.resolvedTags, contentTrees: w.last!.contentTrees, volumes: w.last!.volumes },
    memory: w.memory,
    facts: { now: 'n', instance: INSTANCE, images: w.images, volumeDirs: w.volumeDirs, volumesDir: '/v', freeBytes: 1e12 },
  });
  t.same([...p1.verify.values()].map((v) => v.refCount), [0, 0, 0], 'every verified blob asked to go (refCount 0)');
  const p = settle(w);
  t.equal(p.verify.size, 0, 'configs unpublished once the verifier removed the statuses');
  t.equal(w.log.filter((l) => l.startsWith('deleteVerified')).length, 3, 'manifest, config, layer deleted');
  t.ok(w.log.some((l) => l.startsWith('removeImage zedbox-abcdef012345/')), 'the image is removed');
  t.equal(w.images.size, 0);
});

t.test('GC: blobs the verifier found at start are deleted unless needed; images in use wait', async (t) => {
  const w = world();
  const img = addImage(w, 'x', ['L']);
  for (const d of [img.manifest, img.config, sha('L'), sha('orphan')]) {
    w.vis.set(d, { digest: d, state: 'VERIFIED', refCount: 0, path: `/p/verified/${d.slice(7)}`, sizeBytes: 1 });
  }
  registryTree(w, CT, `apps/x@${img.top}`);
  w.images.set('zedbox-abcdef012345/old:0123456789ab', sha('old'));
  w.images.set('zedbox-abcdef012345/busy:0123456789ab', sha('busy'));
  w.inUse.add('zedbox-abcdef012345/busy:0123456789ab');
  const p = settle(w);
  t.same(w.log.filter((l) => l.startsWith('download')), [], 'nothing downloaded again: all was verified');
  t.same(w.log.filter((l) => l.startsWith('deleteVerified')), [`deleteVerified ${sha('orphan')}`], 'only the orphan deleted');
  t.equal(p.contentTrees.get(CT)?.state, 'LOADED');
  t.notOk(w.images.has('zedbox-abcdef012345/old:0123456789ab'), 'unneeded image removed');
  t.ok(w.images.has('zedbox-abcdef012345/busy:0123456789ab'), 'image in use kept');
  t.equal(w.log.filter((l) => l.includes('busy')).length, 1, 'tried once; retried only after the next GC tick');
  w.memory.removeBlocked.clear(); // the GC tick
  w.inUse.clear();
  settle(w);
  t.notOk(w.images.has('zedbox-abcdef012345/busy:0123456789ab'), 'removed at the next GC');
});

t.test('volumes: blank and raw directories, verifyOnly, space check, found again, removed at refCount 0', async (t) => {
  const w = world();
  const BLANK = 'dddddddd-0000-0000-0000-0000000000b1';
  addVolume(w, { id: BLANK, origin: { type: 'blank' }, readonly: false });
  addRef(w, { appId: APP, volumeId: BLANK, generation: 0, localGeneration: 0, verifyOnly: true, mountDir: '/data' });
  let p = settle(w);
  const bkey = `${BLANK}#0#0`;
  t.equal(p.volumes.get(bkey)?.state, 'LOADED', 'verifyOnly: nothing created yet');
  t.notOk(w.volumeDirs.has(bkey));
  addRef(w, { appId: APP, volumeId: BLANK, generation: 0, localGeneration: 0, verifyOnly: false, mountDir: '/data' });
  p = settle(w);
  const ref = [...p.volumeRefs.values()][0];
  t.same({ state: ref?.state, kind: ref?.kind, hostPath: ref?.hostPath, mountDir: ref?.mountDir },
    { state: 'CREATED_VOLUME', kind: 'directory', hostPath: `/p/vault/volumes/${bkey}`, mountDir: '/data' });

  const file = 'raw disk bytes';
  w.blobs.set(sha(file), file);
  w.trees.set(CT, { id: CT, datastoreIds: [WEB], url: 'images/disk.img', format: 'raw', sha256: sha(file), sizeBytes: file.length });
  const RAW = 'dddddddd-0000-0000-0000-0000000000r1'.replace('r', 'a');
  addVolume(w, { id: RAW, origin: { type: 'download', contentTreeId: CT } });
  addRef(w, { appId: APP, volumeId: RAW, generation: 0, localGeneration: 0, verifyOnly: false });
  w.freeBytes = 10; // less than storage.reserve.mib
  p = settle(w);
  const rkey = `${RAW}#0#0`;
  t.equal(p.contentTrees.get(CT)?.state, 'LOADED');
  t.equal(p.contentTrees.get(CT)?.path, `/p/verified/${sha(file).slice(7)}`);
  t.match(p.volumes.get(rkey)?.error?.error, /not enough space/);
  t.notOk(w.volumeDirs.has(rkey), 'not created without space');
  w.freeBytes = 2 ** 40;
  p = settle(w);
  t.equal(p.volumes.get(rkey)?.state, 'CREATED_VOLUME');
  t.ok(w.log.includes(`createVolume ${rkey}`));

  // Restart: memory is empty, the directories are found again and not rebuilt.
  w.memory.volumes.clear();
  const before = w.log.length;
  p = settle(w);
  t.equal(p.volumes.get(rkey)?.state, 'CREATED_VOLUME');
  t.equal(p.volumes.get(bkey)?.hostPath, `/p/vault/volumes/${bkey}`);

  w.refs.clear();
  w.volumes.clear();
  p = settle(w);
  t.equal(p.volumes.size, 0, 'statuses gone at refCount 0');
  t.equal(w.volumeDirs.size, 0, 'directories deleted');
  t.ok(w.log.slice(before).includes(`deleteVolume ${rkey}`));
});

t.test('bad config: clear errors naming the content tree', async (t) => {
  const w = world();
  w.trees.set(CT, { id: CT, datastoreIds: [WEB], url: 'disk.img', format: 'raw' });
  w.trees.set(CT2, { id: CT2, datastoreIds: ['99999999-0000-0000-0000-000000000000'], url: 'x', format: 'container' });
  const p = settle(w);
  t.match(p.contentTrees.get(CT)?.error?.error, new RegExp(`content tree ${CT} .*sha256 is required`));
  t.match(p.contentTrees.get(CT2)?.error?.error, /datastore 99999999-0000-0000-0000-000000000000 not found/);
  t.equal(p.downloader.size, 0, 'nothing fetched');
  addVolume(w, { id: VOL, origin: { type: 'download', contentTreeId: 'cccccccc-0000-0000-0000-00000000ffff' } });
  addRef(w, { appId: APP, volumeId: VOL, generation: 0, localGeneration: 0, verifyOnly: false });
  addRef(w, { appId: APP, volumeId: 'dddddddd-0000-0000-0000-00000000ffff', generation: 0, localGeneration: 0, verifyOnly: false });
  const p2 = settle(w);
  t.match(p2.volumes.get(`${VOL}#0#0`)?.error?.error, /content tree cccccccc-0000-0000-0000-00000000ffff not found/);
  t.match(p2.volumes.get('dddddddd-0000-0000-0000-00000000ffff#0#0')?.error?.error, /no such volume in the config/);
});

t.test('downloader refs: one per tree still fetching; refCount 0 once verified, unpublished once the status is gone', async (t) => {
  const w = world();
  const a = addImage(w, 'a', ['shared']);
  const b = addImage(w, 'b', ['shared']);
  registryTree(w, CT, `apps/a@${a.top}`);
  registryTree(w, CT2, `apps/b@${b.top}`);
  const seen: number[] = [];
  const layer = sha('shared');
  let zeroRound = -1;
  for (let i = 0; i < 30; i++) {
    const p = round(w);
    const dc = p.downloader.get(layer);
    if (dc) seen.push(dc.refCount);
    if (dc?.refCount === 0 && zeroRound < 0) {
      zeroRound = i;
      t.notOk(w.ds.has(layer), 'the downloader removed its status after refCount 0');
    }
    if (zeroRound >= 0 && i === zeroRound + 1) t.notOk(p.downloader.has(layer), 'then volumemgr unpublishes the config');
  }
  t.equal(seen[0], 2, 'the shared layer is needed by two trees');
  t.ok(zeroRound > 0, 'asked to delete (refCount 0) once verified');
  t.equal(w.log.filter((l) => l.startsWith(`download ${layer}`)).length, 1, 'downloaded once for both');
  t.equal(w.last?.contentTrees.get(CT)?.state, 'LOADED');
  t.equal(w.last?.contentTrees.get(CT2)?.state, 'LOADED');
});

t.test('nothing is collected while a tree does not yet know its blobs', async (t) => {
  const w = world();
  const img = addImage(w, 'x', ['L']);
  w.vis.set(sha('L'), { digest: sha('L'), state: 'VERIFIED', refCount: 0, path: '/p/verified/l', sizeBytes: 1 });
  w.images.set(imageRefFor(INSTANCE, undefined, CT, img.manifest), img.config);
  registryTree(w, CT, `apps/x@${img.top}`);
  const p = round(w); // the manifest is not verified yet: the layer and the image may still be needed
  t.notOk([...p.verify.values()].some((v) => v.refCount === 0), 'no deletion asked');
  t.notOk(p.steps.some((s) => s.kind === 'removeImage'), 'no image removed');
  settle(w);
  t.ok(w.vis.has(sha('L')), 'the layer found at start was kept and used');
  t.equal(w.log.filter((l) => l.startsWith('loadImage')).length, 0, 'and the image in Docker was kept');
});
