// From an accepted config to the collections zedagent publishes, and from what is
// published now to the steps that make it so. Pure: the driver applies the steps.
import {
  volumeKey, type AppInstanceConfig, type ContentTree, type Datastore, type DeviceConfig, type NetworkInstance, type Volume,
} from '../../pubsub/collections/config';
import type { DevicePortConfig } from '../../pubsub/collections/network';
import { CONFIG_ITEMS, defaultConfigItems, patternItems } from '../../pubsub/collections/config-items';

/** The collections a device config becomes, in the order they are published (things before what refers to them). */
export const PUBLISH_ORDER = [
  'ConfigItemValueMap', 'PublisherKeys', 'DatastoreConfig', 'ContentTreeConfig', 'VolumeConfig', 'NetworkInstanceConfig', 'AppInstanceConfig', 'DevicePortConfig',
] as const;
export type ConfigType = (typeof PUBLISH_ORDER)[number];

export interface DesiredValues {
  ConfigItemValueMap: Map<string, { items: Record<string, string> }>;
  PublisherKeys: Map<string, { keys: { id: string; ed25519: string }[] }>;
  DatastoreConfig: Map<string, Datastore>;
  ContentTreeConfig: Map<string, ContentTree>;
  VolumeConfig: Map<string, Volume>;
  NetworkInstanceConfig: Map<string, NetworkInstance>;
  AppInstanceConfig: Map<string, AppInstanceConfig>;
  DevicePortConfig: Map<string, DevicePortConfig>;
}

/**
 * The collections a config becomes. An app's configVersion is the config version that last
 * changed that app (from `published`, the apps as published now): a new config version touches
 * only the apps it changes, so the work on the bus follows the change, not the size of the config.
 */
export function desiredValues(config: DeviceConfig, published: ReadonlyMap<string, Readonly<AppInstanceConfig>> = new Map()): DesiredValues {
  const volumes = new Map((config.volumes ?? []).map((v) => [v.id, v]));
  const apps = (config.apps ?? []).map((a): AppInstanceConfig => {
    const app = { ...a, volumeRefs: a.volumeRefs.map((r) => ({ ...r, generation: volumes.get(r.volumeId)?.generation ?? 0 })) };
    const before = published.get(a.id);
    const unchanged = before !== undefined && JSON.stringify({ ...before, configVersion: '' }) === JSON.stringify({ ...app, configVersion: '' });
    return { ...app, configVersion: unchanged ? before.configVersion : config.version };
  });
  return {
    ConfigItemValueMap: new Map([['global', { items: effectiveItems(config.configItems ?? {}) }]]),
    PublisherKeys: new Map([['global', { keys: [...(config.publisherKeys ?? [])] }]]),
    DatastoreConfig: byKey(config.datastores ?? [], (d) => d.id),
    ContentTreeConfig: byKey(config.contentTrees ?? [], (t) => t.id),
    VolumeConfig: byKey(config.volumes ?? [], (v) => volumeKey(v.id, v.generation)),
    NetworkInstanceConfig: byKey(config.networkInstances ?? [], (n) => n.id),
    AppInstanceConfig: byKey(apps, (a) => a.id),
    // Absent ports: nim keeps choosing from its other sources (local file, last resort, the host as it is).
    DevicePortConfig: config.networkPorts ? new Map([['zedagent', { key: 'zedagent' as const, ports: config.networkPorts }]]) : new Map(),
  };
}

/** Every known item: the config's value, else the default. Unknown keys are left out (reported elsewhere). */
function effectiveItems(given: Record<string, string>): Record<string, string> {
  const items = defaultConfigItems();
  for (const key of Object.keys(CONFIG_ITEMS)) if (given[key] !== undefined) items[key] = given[key];
  return { ...items, ...patternItems(given) };
}

function byKey<T>(items: readonly T[], key: (v: T) => string): Map<string, T> {
  return new Map(items.map((v) => [key(v), v]));
}

export type PublishStep =
  | { op: 'publish'; type: ConfigType; key: string; value: unknown }
  | { op: 'unpublish'; type: ConfigType; key: string };

/**
 * What to publish and unpublish so that `current` (type → key → JSON text as published)
 * becomes `desired`. Unchanged values make no step. New and changed values go first
 * in PUBLISH_ORDER; removals last, in reverse (apps before the volumes they use).
 */
export function planPublish(current: ReadonlyMap<ConfigType, ReadonlyMap<string, string>>, desired: DesiredValues): PublishStep[] {
  const steps: PublishStep[] = [];
  for (const type of PUBLISH_ORDER) {
    const now = current.get(type);
    for (const [key, value] of desired[type] as Map<string, unknown>) {
      if (now?.get(key) !== JSON.stringify(value)) steps.push({ op: 'publish', type, key, value });
    }
  }
  for (const type of [...PUBLISH_ORDER].reverse()) {
    const want = desired[type] as Map<string, unknown>;
    for (const key of current.get(type)?.keys() ?? []) if (!want.has(key)) steps.push({ op: 'unpublish', type, key });
  }
  return steps;
}

/** Values too large for their collection, as field errors: checked before anything is applied. */
export function oversizedValues(steps: readonly PublishStep[], maxBytes: (type: ConfigType) => number): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  for (const s of steps) {
    if (s.op !== 'publish') continue;
    const bytes = Buffer.byteLength(JSON.stringify(s.value));
    const max = maxBytes(s.type);
    if (bytes > max) out.push({ path: `/${SECTION[s.type]}`, message: `${s.type} ${s.key} would be ${bytes} bytes; the limit is ${max}` });
  }
  return out;
}

const SECTION: Record<ConfigType, string> = {
  ConfigItemValueMap: 'configItems', PublisherKeys: 'publisherKeys', DatastoreConfig: 'datastores', ContentTreeConfig: 'contentTrees',
  VolumeConfig: 'volumes', NetworkInstanceConfig: 'networkInstances', AppInstanceConfig: 'apps', DevicePortConfig: 'networkPorts',
};
