// volumemgr with content that goes wrong, on a real bus with the real registry and
// a loopback HTTP server: bad bytes are fetched again up to the limit, then the
// error names the content tree and the digest; a corrected config recovers
// without a restart; raw content becomes a directory holding a copy of the file.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import Docker from 'dockerode';
import { volumemgr } from '../../agents/volumemgr/main';
import { imageIdOf } from '../../agents/volumemgr/image-driver';
import {
  ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection, VolumeConfigCollection, volumeKey,
  type ContentTree,
} from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { ContentTreeStatusCollection, VolumeRefConfigCollection, VolumeRefStatusCollection, volumeRefKey } from '../../pubsub/collections/volumes';
import { startAgents, type Harness } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';
import { deleteFromRegistry, makeUniqueImage, pushToRegistry, registryGet, startFakeContentAgents, uniqueName } from '../lib/volumemgr-fakes';

const DS = '0a0a0a0a-0000-4000-8000-000000000002';
const CT = '0c0c0c0c-0000-4000-8000-000000000002';
const VOL = '0d0d0d0d-0000-4000-8000-000000000003';
const APP = '0e0e0e0e-0000-4000-8000-000000000002';
const ref = { appId: APP, volumeId: VOL, generation: 0, localGeneration: 0, verifyOnly: false };
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function setUp(h: Harness, ds: { type: 'http' | 'registry'; url: string }, tree: ContentTree): Promise<(tree: ContentTree) => void> {
  (await h.publisher(DatastoreConfigCollection)).publish(DS, { id: DS, ...ds });
  (await h.publisher(ConfigItemValueMapCollection)).publish('global', { items: { ...defaultConfigItems(), 'blob.download.max.retries': '1' } });
  const cts = await h.publisher(ContentTreeConfigCollection);
  cts.publish(CT, tree);
  (await h.publisher(VolumeConfigCollection)).publish(volumeKey(VOL), { id: VOL, origin: { type: 'download', contentTreeId: CT } });
  (await h.publisher(VolumeRefConfigCollection)).publish(volumeRefKey(ref), ref);
  return (next) => cts.publish(CT, next);
}

t.test('raw http content: a wrong sha256 is an error naming tree and digest; corrected, it becomes a directory', async (t) => {
  ensureServices();
  const bytes = Buffer.concat([Buffer.from('raw disk '), randomBytes(4096)]);
  const served: string[] = [];
  const server = http.createServer((req, res) => {
    served.push(req.url ?? '');
    if (req.url === '/files/images/disk.img') res.end(bytes);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const h = await startAgents([volumemgr]);
  const fakes = await startFakeContentAgents(h, '');
  t.teardown(async () => { fakes.stop(); await h.stop(); });
  const wrong = sha('something else');
  const tree: ContentTree = { id: CT, name: 'disk', datastoreIds: [DS], url: 'images/disk.img', format: 'raw', sha256: wrong };
  const update = await setUp(h, { type: 'http', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/files` }, tree);

  const failed = await h.waitFor(ContentTreeStatusCollection, CT, (v) => /failed verification/.test(v?.error?.error ?? ''), 'final error');
  t.match(failed?.error?.error, `blob ${wrong} of content tree ${CT} failed verification 2 times`);
  t.same(failed?.error?.entities?.slice(0, 2), [{ type: 'contentTree', id: CT }, { type: 'blob', id: wrong }]);
  t.equal(served.length, 2, 'fetched once, then once more (blob.download.max.retries 1), then no more');
  const appSees = await h.waitFor(VolumeRefStatusCollection, volumeRefKey(ref), (v) => !!v?.error, 'the app sees the error');
  t.match(appSees?.error?.error, wrong);

  update({ ...tree, sha256: sha(bytes) });
  const vol = await h.waitFor(VolumeRefStatusCollection, volumeRefKey(ref), (v) => v?.state === 'CREATED_VOLUME', 'volume created after the fix');
  t.equal(vol?.kind, 'directory');
  t.notOk(vol?.error, 'error cleared');
  t.ok(vol?.hostPath?.startsWith(h.dirs.persist), 'under the persist directory');
  t.same(fs.readdirSync(vol?.hostPath ?? ''), ['disk.img']);
  t.ok(fs.readFileSync(path.join(vol?.hostPath ?? '', 'disk.img')).equals(bytes), 'a copy of the verified file');
});

t.test('a layer that never verifies: fetched again up to the limit, final error, recovers when corrected', async (t) => {
  const svc = ensureServices();
  const docker = new Docker({ socketPath: svc.dockerSocket });
  const repo = `${uniqueName('vmtest')}/tamper`;
  makeUniqueImage(`${repo}:src`);
  pushToRegistry(svc.registry, `${repo}:src`, `${repo}:1`);
  await docker.getImage(`${repo}:src`).remove();
  const manifest = await registryGet(svc.registry, repo, 'manifests', '1');
  const layer = (JSON.parse(manifest.body.toString()) as { layers: { digest: string }[] }).layers[0]?.digest as string;
  t.teardown(() => deleteFromRegistry(svc.registry, repo, manifest.digest));

  let tampering = true;
  let layerFetches = 0;
  const h = await startAgents([volumemgr]);
  const fakes = await startFakeContentAgents(h, svc.registry, {
    tamper: (d, body) => {
      if (d !== layer) return body;
      layerFetches++;
      return tampering ? Buffer.concat([body, Buffer.from('x')]) : body;
    },
  });
  let imageRef: string | undefined;
  t.teardown(async () => {
    fakes.stop();
    await h.stop();
    if (imageRef) await docker.getImage(imageRef).remove().catch(() => undefined);
  });
  const tree: ContentTree = { id: CT, name: 'tamper', datastoreIds: [DS], url: `${repo}:1`, format: 'container' };
  const update = await setUp(h, { type: 'registry', url: `http://${svc.registry}` }, tree);

  const failed = await h.waitFor(ContentTreeStatusCollection, CT, (v) => /failed verification/.test(v?.error?.error ?? ''), 'final error');
  t.match(failed?.error?.error, `blob ${layer} of content tree ${CT} failed verification 2 times`);
  t.equal(failed?.blobs.find((b) => b.digest === layer)?.state, 'INITIAL');
  t.equal(layerFetches, 2, 'the layer was fetched twice, then given up');
  t.not(failed?.state, 'LOADED');

  tampering = false;
  update({ ...tree, sha256: manifest.digest }); // the operator pins the digest: a changed config
  const ct = await h.waitFor(ContentTreeStatusCollection, CT, (v) => v?.state === 'LOADED', 'loaded after the fix');
  imageRef = ct?.imageRef;
  t.notOk(ct?.error);
  t.equal(layerFetches, 3, 'fetched once more after the config changed');
  t.equal(await imageIdOf(docker, imageRef ?? ''), ct?.imageId, 'in Docker with the expected id');
  await h.waitFor(VolumeRefStatusCollection, volumeRefKey(ref), (v) => v?.state === 'CREATED_VOLUME', 'volume created');
});
