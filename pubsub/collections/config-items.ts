// Every config item the device knows, with its default and its check: the one
// table agents read their timers and limits from (EVE's CONFIG-PROPERTIES).
// zedagent publishes the effective values in ConfigItemValueMap; readers use
// configItem() so a missing or bad value falls back to the default.

interface ItemDef {
  readonly default: number | boolean;
  readonly min?: number;
  readonly max?: number;
  readonly description: string;
}

export const CONFIG_ITEMS = {
  'timer.download.retry': { default: 60, min: 1, max: 86400, description: 'seconds: longest wait between retries of a failed download (retries back off from 1 s up to this)' },
  'timer.download.stalled': { default: 600, min: 5, max: 86400, description: 'seconds without a byte before a download is aborted and retried' },
  'download.max.concurrent': { default: 3, min: 1, max: 64, description: 'downloads running at once; the rest wait in order' },
  'blob.download.max.retries': { default: 5, min: 0, max: 1000, description: 'times a blob that fails verification is fetched again before the error is final' },
  'storage.reserve.mib': { default: 64, min: 0, max: 1 << 20, description: 'MiB that must stay free on the persist filesystem after a download or volume is written' },
  'content.signature.required': { default: false, description: 'true: content trees without a trusted publisher signature are refused' },
  'timer.gc.content': { default: 60, min: 1, max: 86400, description: 'seconds between sweeps that remove unreferenced blobs and images' },
  'app.restart.backoff.max': { default: 60, min: 1, max: 3600, description: 'seconds: longest wait before restarting a container that exited (back off from 1 s)' },
  'app.crashloop.limit': { default: 5, min: 1, max: 1000, description: 'container exits within app.crashloop.window before the app is left BROKEN and reported' },
  'app.crashloop.window': { default: 600, min: 1, max: 86400, description: 'seconds over which container exits are counted' },
  'app.stop.timeout': { default: 10, min: 0, max: 600, description: 'seconds a container gets after SIGTERM before it is killed' },
  'timer.metric.interval': { default: 60, min: 1, max: 3600, description: 'seconds between metrics samples (per app and device) and their reports to the controller' },
  'timer.deviceinfo.interval': { default: 600, min: 10, max: 86400, description: 'seconds between reports of device info to the controller when nothing changed' },
} as const satisfies Record<string, ItemDef>;

export type ConfigItemKey = keyof typeof CONFIG_ITEMS;
type ItemValue<K extends ConfigItemKey> = (typeof CONFIG_ITEMS)[K]['default'] extends boolean ? boolean : number;

export function isKnownConfigItem(key: string): key is ConfigItemKey {
  return Object.prototype.hasOwnProperty.call(CONFIG_ITEMS, key);
}

/** Why a value is not acceptable for an item, or undefined when it is. */
export function configItemProblem(key: ConfigItemKey, raw: string): string | undefined {
  const def: ItemDef = CONFIG_ITEMS[key];
  if (typeof def.default === 'boolean') return raw === 'true' || raw === 'false' ? undefined : 'must be true or false';
  if (!/^-?\d+(\.\d+)?$/.test(raw.trim())) return 'must be a number';
  const n = Number(raw);
  if (def.min !== undefined && n < def.min) return `must be at least ${def.min}`;
  if (def.max !== undefined && n > def.max) return `must be at most ${def.max}`;
  return undefined;
}

/** The effective value of an item from a published map (or the default). */
export function configItem<K extends ConfigItemKey>(items: Readonly<Record<string, string>> | undefined, key: K): ItemValue<K> {
  const def: ItemDef = CONFIG_ITEMS[key];
  const raw = items?.[key];
  if (raw === undefined || configItemProblem(key, raw) !== undefined) return def.default as ItemValue<K>;
  return (typeof def.default === 'boolean' ? raw === 'true' : Number(raw)) as ItemValue<K>;
}

/** Every item's default, as the strings ConfigItemValueMap carries. */
export function defaultConfigItems(): Record<string, string> {
  return Object.fromEntries(Object.entries(CONFIG_ITEMS).map(([k, d]) => [k, String(d.default)]));
}
