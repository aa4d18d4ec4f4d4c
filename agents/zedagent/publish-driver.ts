// zedagent's local config source: reads the config file (or the checkpoint),
// applies an accepted config by publishing only what changed, and reports in
// DeviceConfigStatus what is applied and what was refused and why.
import type { AgentContext } from '../agent';
import type { CollectionSpec } from '../../pubsub/catalog';
import type { Publication } from '../../pubsub/publication';
import {
  AppInstanceConfigCollection, ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection,
  DeviceConfigStatusCollection, NetworkInstanceConfigCollection, PublisherKeysCollection, VolumeConfigCollection,
  defaultConfigItems, type AppInstanceConfig, type DeviceConfigStatus, type ErrorInfo,
} from '../../pubsub/collections';
import { ConfigFileWatcher, readCheckpoint, readConfigFile, writeCheckpoint } from './config-file-driver';
import { parseDeviceConfig, type FieldError, type ParsedConfig } from './device-config';
import { PUBLISH_ORDER, desiredValues, oversizedValues, planPublish, type ConfigType } from './publish-plan';

const SPECS = {
  ConfigItemValueMap: ConfigItemValueMapCollection, PublisherKeys: PublisherKeysCollection, DatastoreConfig: DatastoreConfigCollection,
  ContentTreeConfig: ContentTreeConfigCollection, VolumeConfig: VolumeConfigCollection,
  NetworkInstanceConfig: NetworkInstanceConfigCollection, AppInstanceConfig: AppInstanceConfigCollection,
} as const;

export class LocalConfigSource {
  private readonly pubs = new Map<ConfigType, Publication>();
  private readonly statusPub;
  private status: DeviceConfigStatus;
  /** The last file content acted on (applied or refused), so an unchanged file is not re-processed. */
  private lastSha: string | undefined;
  private signalled = false;
  private watcher: ConfigFileWatcher | undefined;

  constructor(private readonly ctx: AgentContext) {
    for (const type of PUBLISH_ORDER) this.pubs.set(type, ctx.publish(SPECS[type] as CollectionSpec));
    this.statusPub = ctx.publish(DeviceConfigStatusCollection);
    this.status = { source: `file:${ctx.settings.configFile}`, fieldErrors: [], unknownConfigItems: [] };
  }

  start(): void {
    const file = this.ctx.settings.configFile;
    const read = readConfigFile(file);
    const parsed = read.ok ? parseDeviceConfig(read.text) : undefined;
    if (read.ok && parsed?.config) this.apply(parsed, read.text);
    else {
      if (parsed) this.refuse(parsed.sha256, parsed.errors, parsed.unknownConfigItems);
      else if (!read.ok && !read.missing) this.refuse(undefined, [{ path: '', message: read.error }], []);
      this.applyCheckpoint(read.ok ? undefined : read);
    }
    this.watcher = new ConfigFileWatcher(file, () => this.reload(), this.ctx);
    this.watcher.start();
  }

  stop(): void {
    this.watcher?.stop();
  }

  /** The file changed (or may have): apply it, refuse it, or ignore it if it is what we already saw. */
  reload(): void {
    const read = readConfigFile(this.ctx.settings.configFile);
    if (!read.ok) {
      // A vanished file removes nothing: the device keeps running the applied config.
      if (read.missing) this.ctx.log.info('config file is gone; keeping the applied config', { file: this.ctx.settings.configFile });
      else this.refuse(undefined, [{ path: '', message: read.error }], []);
      return;
    }
    const parsed = parseDeviceConfig(read.text);
    if (parsed.sha256 === this.lastSha) return;
    if (parsed.config) this.apply(parsed, read.text);
    else this.refuse(parsed.sha256, parsed.errors, parsed.unknownConfigItems);
  }

  private applyCheckpoint(read: { missing: boolean; error: string } | undefined): void {
    const text = readCheckpoint(this.ctx.dirs.persist);
    const parsed = text === undefined ? undefined : parseDeviceConfig(text);
    if (text !== undefined && parsed?.config) {
      this.ctx.log.warn('applying the checkpointed config: the config file is missing or refused', { version: parsed.config.version });
      this.apply(parsed, text, { checkpoint: true, fileMissing: read?.missing ?? false });
      return;
    }
    if (text !== undefined) this.ctx.log.error('the checkpointed config is unreadable; ignoring it', { errors: parsed?.errors.length });
    // Nothing to run: readers still get every config item's default.
    const items = this.pubs.get('ConfigItemValueMap')!;
    items.publish('global', { items: defaultConfigItems() });
    this.statusPub.publish('global', this.status);
  }

  private apply(parsed: ParsedConfig, text: string, from: { checkpoint: boolean; fileMissing: boolean } = { checkpoint: false, fileMissing: false }): void {
    const config = parsed.config!;
    const apps = this.pubs.get('AppInstanceConfig')!.getAll() as Map<string, Readonly<AppInstanceConfig>>;
    const steps = planPublish(this.current(), desiredValues(config, apps));
    const tooLarge = oversizedValues(steps, (type) => SPECS[type].maxValueBytes);
    if (tooLarge.length) return this.refuse(parsed.sha256, tooLarge, parsed.unknownConfigItems);
    if (!from.checkpoint) {
      this.lastSha = parsed.sha256;
      writeCheckpoint(this.ctx.dirs.persist, text);
    }
    for (const s of steps) {
      const pub = this.pubs.get(s.type)!;
      if (s.op === 'publish') pub.publish(s.key, s.value as never);
      else pub.unpublish(s.key);
    }
    this.ctx.log.info('device config applied', { version: config.version, changes: steps.length, fromCheckpoint: from.checkpoint });
    const now = new Date().toISOString();
    const keepRefusal = from.checkpoint && !from.fileMissing; // the file was refused: say so beside what runs
    this.status = {
      source: this.status.source,
      appliedVersion: config.version, appliedSha256: parsed.sha256, appliedAt: now,
      ...(keepRefusal ? pick(this.status) : {}),
      ...(from.fileMissing ? { error: notice(`no config file at ${this.ctx.settings.configFile}; running the checkpointed config version ${config.version}`, now) } : {}),
      fieldErrors: keepRefusal ? this.status.fieldErrors : [],
      unknownConfigItems: keepRefusal ? this.status.unknownConfigItems : parsed.unknownConfigItems,
    };
    this.statusPub.publish('global', this.status);
    if (!this.signalled) {
      this.signalled = true;
      for (const pub of this.pubs.values()) pub.signalRestarted();
    }
  }

  private refuse(sha: string | undefined, errors: FieldError[], unknownConfigItems: string[]): void {
    if (sha) this.lastSha = sha;
    const now = new Date().toISOString();
    const first = errors[0];
    const summary = `config file refused (${errors.length} error${errors.length === 1 ? '' : 's'})${first ? `: ${first.path ? `${first.path}: ` : ''}${first.message}` : ''}`;
    this.ctx.log.warn(summary, { errors });
    const error: ErrorInfo = {
      error: summary, time: now, severity: 'error', source: 'DeviceConfigStatus',
      retryCondition: 'fix the config file; the previously applied config stays in force',
      ...(sha ? { entities: [{ type: 'deviceConfig', id: `sha256:${sha}` }] } : {}),
    };
    this.status = {
      ...this.status, ...(sha ? { rejectedSha256: sha } : {}), rejectedAt: now, error, fieldErrors: errors, unknownConfigItems,
    };
    this.statusPub.publish('global', this.status);
  }

  /** What is published now, as JSON text per key: the diff's starting point (kept across an in-process restart). */
  private current(): Map<ConfigType, Map<string, string>> {
    const out = new Map<ConfigType, Map<string, string>>();
    for (const [type, pub] of this.pubs) {
      out.set(type, new Map([...pub.getAll()].map(([k, v]) => [k, JSON.stringify(v)])));
    }
    return out;
  }
}

function pick(s: DeviceConfigStatus): Partial<DeviceConfigStatus> {
  return {
    ...(s.rejectedSha256 ? { rejectedSha256: s.rejectedSha256 } : {}),
    ...(s.rejectedAt ? { rejectedAt: s.rejectedAt } : {}),
    ...(s.error ? { error: s.error } : {}),
  };
}

function notice(error: string, time: string): ErrorInfo {
  return { error, time, severity: 'notice', source: 'DeviceConfigStatus' };
}
