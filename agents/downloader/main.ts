// downloader: fetches content from HTTP datastores and OCI registries into the
// content store's pending directory, and resolves registry tags to digests.
// Wiring only: the decisions are in planner.ts, the I/O in the *-driver.ts files.
import { untilAborted, type AgentSpec } from '../agent';
import { contentStore } from '../../lib/content-store';
import {
  ConfigItemValueMapCollection, DatastoreConfigCollection, DownloaderConfigCollection, DownloaderStatusCollection,
  ResolveConfigCollection, ResolveStatusCollection, type Datastore, type DownloaderConfig,
} from '../../pubsub/collections';
import { Downloads } from './downloads';
import { Fetcher } from './fetch-driver';
import { HttpClient } from './http-driver';
import { Resolver } from './resolver';
import { PendingStore } from './store-driver';
import { secretOpener } from '../../lib/device-identity';

export const downloader: AgentSpec = {
  name: 'downloader',
  summary: 'fetches content from HTTP datastores and OCI registries into the content store',
  help: `Fetches blobs and images into a content-addressed store, resumable across network cuts and restarts,
with progress, retries and free-space checks, and resolves registry tags to digests.

Subscribes DownloaderConfig and ResolveConfig (volumemgr), DatastoreConfig and ConfigItemValueMap (zedagent).
Publishes DownloaderStatus and ResolveStatus. Files: <persist>/vault/downloader/pending/<hex>[.part[.json]].
Config items: download.max.concurrent, timer.download.retry, timer.download.stalled, storage.reserve.mib.`,
  run: async (ctx) => {
    const store = new PendingStore(contentStore(ctx.dirs.persist).pending);
    const client = new HttpClient(secretOpener(ctx.dirs));
    const statusPub = ctx.publish(DownloaderStatusCollection);
    const resolvePub = ctx.publish(ResolveStatusCollection);

    const configs = new Map<string, DownloaderConfig>();
    // The subscriptions below are read lazily through these closures.
    const datastore = (id: string): Datastore | undefined => datastores.get(id);
    const itemMap = (): Readonly<Record<string, string>> | undefined => items.get('global')?.items;
    const downloads: Downloads = new Downloads(ctx, statusPub, store, new Fetcher(store, client), { configs: () => configs, datastore, items: itemMap });
    const resolver = new Resolver(ctx, resolvePub, client, datastore, itemMap);
    const changed = (): void => {
      downloads.datastoresChanged();
      resolver.datastoresChanged();
    };
    const items = ctx.subscribe(ConfigItemValueMapCollection, { create: (): void => downloads.replan(), modify: (): void => downloads.replan() });
    const datastores = ctx.subscribe(DatastoreConfigCollection, { create: changed, modify: changed });

    // Start-up scan first, so what is on disk is published before volumemgr's configs are acted on.
    downloads.scan();
    for (const key of resolvePub.keys()) resolvePub.unpublish(key);
    statusPub.signalRestarted();
    resolvePub.signalRestarted();

    const onConfig = (key: string, value: DownloaderConfig): void => {
      configs.set(key, value);
      downloads.replan();
    };
    ctx.subscribe(DownloaderConfigCollection, {
      create: onConfig, modify: onConfig,
      delete: (key) => {
        configs.delete(key);
        downloads.replan();
      },
    });
    ctx.subscribe(ResolveConfigCollection, {
      create: (key, v) => resolver.upsert(key, v), modify: (key, v) => resolver.upsert(key, v),
      delete: (key) => resolver.remove(key),
    });

    await untilAborted(ctx.signal);
    await Promise.all([downloads.stop(), resolver.stop()]);
  },
};
