// The downloader on a bus with one HTTP datastore and zedagent's config items,
// as the downloader integration tests start it; want() asks for a file as
// volumemgr would and returns its digest.
import { createHash, randomUUID } from 'node:crypto';
import type { Test } from 'tap';
import { downloader } from '../../agents/downloader/main';
import {
  ConfigItemValueMapCollection, DatastoreConfigCollection, DownloaderConfigCollection, defaultConfigItems, type DownloaderConfig,
} from '../../pubsub/collections';
import type { HttpDatastore } from '../fixtures/http-datastore';
import { startAgents, type Harness } from './agent-harness';

/**
 * The error a test waits for: not the notice the downloader gives while the DatastoreConfig it
 * needs has not arrived yet (the test's configs reach it in no fixed order).
 */
export const settledError = (v: { error?: { error: string } } | undefined): boolean => !!v?.error && !/is not configured/.test(v.error.error);

export const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

export async function setup(t: Test, server: HttpDatastore, opts: { dirs?: Harness['dirs']; items?: Record<string, string> } = {}) {
  const h = await startAgents([downloader], { dirs: opts.dirs });
  t.teardown(() => h.stop());
  const pub = h.publisher;
  const dsId = randomUUID();
  const ds = await pub(DatastoreConfigCollection);
  ds.publish(dsId, { id: dsId, type: 'http', url: server.url });
  const items = await pub(ConfigItemValueMapCollection);
  items.publish('global', { items: { ...defaultConfigItems(), ...opts.items } });
  const configs = await pub(DownloaderConfigCollection);
  const want = (name: string, body: Buffer, extra: Partial<DownloaderConfig> = {}): string => {
    const digest = sha(body);
    configs.publish(digest, { digest, kind: 'http', datastoreIds: [dsId], name, sizeBytes: body.length, refCount: 1, retry: 0, ...extra });
    return digest;
  };
  return { h, dsId, ds, configs, want };
}
