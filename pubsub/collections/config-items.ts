// Every config item the device knows, with its default and its check: the one
// table agents read their timers and limits from (EVE's CONFIG-PROPERTIES).
// zedagent publishes the effective values in ConfigItemValueMap; readers use
// configItem() so a missing or bad value falls back to the default.

interface ItemDef {
  readonly default: number | boolean | string;
  readonly min?: number;
  readonly max?: number;
  /** For a word-valued item: the words it may take. */
  readonly values?: readonly string[];
  readonly description: string;
}

/** Levels a log line can have, and "none" to send nothing (remote log levels). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'none'] as const;
export type RemoteLogLevel = (typeof LOG_LEVELS)[number];

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
  'timer.port.testinterval': { default: 300, min: 1, max: 86400, description: 'seconds between tests of the current management port configuration\'s path to the controller' },
  'timer.port.testbetterinterval': { default: 600, min: 0, max: 86400, description: 'seconds between retries of a better (higher priority) port configuration while a fallback is in use; 0: never' },
  'timer.port.timeout': { default: 15, min: 1, max: 300, description: 'seconds a connectivity test waits for the controller\'s broker before it fails' },
  'network.fallback.any.eth': { default: false, description: 'true: when no port configuration reaches the controller, nim tries DHCP on every ethernet interface (EVE\'s last resort)' },
  'debug.default.remote.loglevel': { default: 'info', values: LOG_LEVELS, description: 'lowest level of agent log lines sent to the controller (trace, debug, info, warn, error, none); agent.<name>.remote.loglevel overrides it per agent' },
  'debug.app.remote.loglevel': { default: 'info', values: LOG_LEVELS, description: 'lowest level of app output sent to the controller (stdout is info, stderr warn); app.<name>.remote.loglevel overrides it per app' },
  'log.queue.max.mib': { default: 64, min: 1, max: 65536, description: 'MiB of compressed log batches kept on disk while the controller is unreachable; the oldest are dropped past it, and counted' },
  'timer.log.batch': { default: 2, min: 0.05, max: 300, description: 'seconds a log batch stays open before it is compressed and sent (it closes sooner when full)' },
} as const satisfies Record<string, ItemDef>;

/** Items named per agent or per app: the pattern, and the table entry whose default and check they use. */
export const PATTERN_ITEMS = [
  { pattern: /^agent\.([a-z]+)\.remote\.loglevel$/, like: 'debug.default.remote.loglevel' },
  { pattern: /^app\.([A-Za-z0-9][A-Za-z0-9_.-]*)\.remote\.loglevel$/, like: 'debug.app.remote.loglevel' },
] as const satisfies readonly { pattern: RegExp; like: string }[];

export type ConfigItemKey = keyof typeof CONFIG_ITEMS;
type ItemValue<K extends ConfigItemKey> = (typeof CONFIG_ITEMS)[K]['default'] extends boolean ? boolean
  : (typeof CONFIG_ITEMS)[K]['default'] extends string ? string : number;

/** The table entry an item is checked against: its own, or the one a per-agent or per-app pattern names. */
function defOf(key: string): ItemDef | undefined {
  if (Object.prototype.hasOwnProperty.call(CONFIG_ITEMS, key)) return CONFIG_ITEMS[key as ConfigItemKey];
  const p = PATTERN_ITEMS.find((i) => i.pattern.test(key));
  return p ? CONFIG_ITEMS[p.like] : undefined;
}

/** A key of the table, or one of the per-agent or per-app patterns. */
export function isKnownConfigItem(key: string): boolean {
  return defOf(key) !== undefined;
}

/** Why a value is not acceptable for an item, or undefined when it is. */
export function configItemProblem(key: string, raw: string): string | undefined {
  const def = defOf(key);
  if (!def) return 'is not a known config item';
  if (typeof def.default === 'boolean') return raw === 'true' || raw === 'false' ? undefined : 'must be true or false';
  if (typeof def.default === 'string') return def.values?.includes(raw) ? undefined : `must be one of ${def.values?.join(', ')}`;
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
  if (typeof def.default === 'string') return raw as ItemValue<K>;
  return (typeof def.default === 'boolean' ? raw === 'true' : Number(raw)) as ItemValue<K>;
}

/** Known items the config sets beyond the table: the per-agent and per-app ones (validated elsewhere). */
export function patternItems(items: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(items).filter(([k]) => PATTERN_ITEMS.some((i) => i.pattern.test(k))));
}

/** The remote log level for an agent's lines or an app's output: its own item, else the default item. */
export function remoteLogLevel(items: Readonly<Record<string, string>> | undefined, who: { agent: string } | { app: string }): RemoteLogLevel {
  const own = 'agent' in who ? `agent.${who.agent}.remote.loglevel` : `app.${who.app}.remote.loglevel`;
  const raw = items?.[own];
  if (raw !== undefined && configItemProblem(own, raw) === undefined) return raw as RemoteLogLevel;
  return configItem(items, 'agent' in who ? 'debug.default.remote.loglevel' : 'debug.app.remote.loglevel') as RemoteLogLevel;
}

/** Every item's default, as the strings ConfigItemValueMap carries. */
export function defaultConfigItems(): Record<string, string> {
  return Object.fromEntries(Object.entries(CONFIG_ITEMS).map(([k, d]) => [k, String(d.default)]));
}
