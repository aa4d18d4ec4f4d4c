// The story both volumemgr pipeline tests tell: what zedagent and zedmanager would
// publish for one app with a root image and a blank data volume, and how to count
// Docker's image loads (one test with stand-in content agents, one with the real ones).
import type Docker from 'dockerode';
import {
  ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection, VolumeConfigCollection, volumeKey,
} from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { VolumeRefConfigCollection, volumeRefKey } from '../../pubsub/collections/volumes';
import type { Harness } from './agent-harness';

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
