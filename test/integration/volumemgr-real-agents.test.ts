// volumemgr with the real downloader and verifier agents, in-process on a real
// bus, with the real Docker engine and registry: a registry image becomes a
// Docker image with the expected id, a blank volume becomes a directory, a
// restart neither downloads nor loads again, and dropping every reference
// removes volumes, image and blobs (the same story as volumemgr-pipeline, whose
// stand-ins answer for the downloader and verifier).
import t from 'tap';
import { downloader } from '../../agents/downloader/main';
import { verifier } from '../../agents/verifier/main';
import { volumemgr } from '../../agents/volumemgr/main';
import {
  ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection, VolumeConfigCollection, volumeKey,
} from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { DownloaderStatusCollection } from '../../pubsub/collections/content';
import { ContentTreeStatusCollection, VolumeRefConfigCollection } from '../../pubsub/collections/volumes';
import { startAgents, type Harness } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';
import { uniqueName } from '../lib/volumemgr-fakes';
import { CT, DS, ROOT, volumeStory } from '../lib/volumemgr-story';

/** Digests the downloader published a status for (every download it was asked for) while this harness runs. */
function countDownloads(h: Harness): Set<string> {
  const seen = new Set<string>();
  const sub = h.bus.subscribe(DownloaderStatusCollection, { agent: 'test-downloads', owner: 'downloader', create: (d) => { seen.add(d); } });
  const stop = h.stop.bind(h);
  h.stop = async () => { sub.close(); await stop(); };
  return seen;
}

t.test('with the real downloader and verifier: image and blank volume created, kept across a restart, removed when unreferenced', async (t) => {
  await volumeStory(t, {
    agents: [downloader, verifier, volumemgr],
    async start(h) {
      const seen = countDownloads(h);
      return { downloads: () => seen.size, stop: () => undefined };
    },
  });
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
