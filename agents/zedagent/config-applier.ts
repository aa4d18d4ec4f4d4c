// Applying a device config, whichever source it came from (a local file or the
// controller): publish only what changed, and say in DeviceConfigStatus what is
// in force and what was refused and why. A refused config changes nothing.
import type { AgentContext } from '../agent';
import type { CollectionSpec } from '../../pubsub/catalog';
import type { Publication } from '../../pubsub/publication';
import {
  AppInstanceConfigCollection, ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection,
  DeviceConfigStatusCollection, DevicePortConfigCollection, NetworkInstanceConfigCollection, PublisherKeysCollection, VolumeConfigCollection,
  defaultConfigItems, type AppInstanceConfig, type DeviceConfigStatus, type ErrorInfo,
} from '../../pubsub/collections';
import type { FieldError, ParsedConfig } from './device-config';
import { PUBLISH_ORDER, desiredValues, oversizedValues, planPublish, type ConfigType } from './publish-plan';

const SPECS = {
  ConfigItemValueMap: ConfigItemValueMapCollection, PublisherKeys: PublisherKeysCollection, DatastoreConfig: DatastoreConfigCollection,
  ContentTreeConfig: ContentTreeConfigCollection, VolumeConfig: VolumeConfigCollection,
  NetworkInstanceConfig: NetworkInstanceConfigCollection, AppInstanceConfig: AppInstanceConfigCollection,
  DevicePortConfig: DevicePortConfigCollection,
} as const;

export interface ApplyNote {
  /** The controller's sequence number and epoch for this config (absent for a local file). */
  seq?: number;
  epoch?: number;
  fromCheckpoint?: boolean;
  /** Keep the last refusal beside what runs (the newest config was refused, an older one runs). */
  keepRefusal?: boolean;
  /** A notice to show beside the applied config (e.g. running from the checkpoint). */
  notice?: string;
}

export class ConfigApplier {
  private readonly pubs = new Map<ConfigType, Publication>();
  private readonly statusPub;
  private current_: DeviceConfigStatus;
  private signalled = false;
  private readonly listeners: Array<(s: DeviceConfigStatus) => void> = [];

  constructor(private readonly ctx: AgentContext, source: string) {
    for (const type of PUBLISH_ORDER) this.pubs.set(type, ctx.publish(SPECS[type] as CollectionSpec));
    this.statusPub = ctx.publish(DeviceConfigStatusCollection);
    this.current_ = { source, fieldErrors: [], unknownConfigItems: [] };
  }

  get status(): Readonly<DeviceConfigStatus> {
    return this.current_;
  }

  /** What is published now of one type (zedagent reports its own config alongside the others' status). */
  values<T>(type: ConfigType): Map<string, Readonly<T>> {
    return this.pubs.get(type)!.getAll() as Map<string, Readonly<T>>;
  }

  onStatus(fn: (s: DeviceConfigStatus) => void): void {
    this.listeners.push(fn);
  }

  /** Publishes the config's changes; false (and a refusal) when a value is too large for the bus. */
  apply(parsed: ParsedConfig, note: ApplyNote = {}): boolean {
    const config = parsed.config!;
    const apps = this.pubs.get('AppInstanceConfig')!.getAll() as Map<string, Readonly<AppInstanceConfig>>;
    const steps = planPublish(this.published(), desiredValues(config, apps));
    const tooLarge = oversizedValues(steps, (type) => SPECS[type].maxValueBytes);
    if (tooLarge.length) {
      this.refuse(parsed.sha256, tooLarge, parsed.unknownConfigItems);
      return false;
    }
    for (const s of steps) {
      const pub = this.pubs.get(s.type)!;
      if (s.op === 'publish') pub.publish(s.key, s.value as never);
      else pub.unpublish(s.key);
    }
    this.ctx.log.info('device config applied', {
      version: config.version, changes: steps.length, fromCheckpoint: note.fromCheckpoint ?? false, ...(note.seq !== undefined ? { seq: note.seq } : {}),
    });
    const now = new Date().toISOString();
    const prev = this.current_;
    this.setStatus({
      source: prev.source,
      appliedVersion: config.version, appliedSha256: parsed.sha256, appliedAt: now,
      ...(note.seq !== undefined ? { appliedSeq: note.seq } : {}),
      ...(note.epoch !== undefined ? { controllerEpoch: note.epoch } : {}),
      ...(note.keepRefusal ? refusalOf(prev) : {}),
      ...(note.notice ? { error: { error: note.notice, time: now, severity: 'notice', source: 'DeviceConfigStatus' } } : {}),
      fieldErrors: note.keepRefusal ? prev.fieldErrors : [],
      unknownConfigItems: note.keepRefusal ? prev.unknownConfigItems : parsed.unknownConfigItems,
    });
    if (!this.signalled) {
      this.signalled = true;
      for (const pub of this.pubs.values()) pub.signalRestarted();
    }
    return true;
  }

  /** Nothing to run yet: readers still get every config item's default. */
  publishDefaults(): void {
    this.pubs.get('ConfigItemValueMap')!.publish('global', { items: defaultConfigItems() });
    this.setStatus(this.current_);
  }

  /** Records a refused config; what was applied stays in force. */
  refuse(sha: string | undefined, errors: FieldError[], unknownConfigItems: string[], what = 'config', retryCondition = 'fix the config; the previously applied config stays in force'): void {
    const now = new Date().toISOString();
    const first = errors[0];
    const summary = `${what} refused (${errors.length} error${errors.length === 1 ? '' : 's'})${first ? `: ${first.path ? `${first.path}: ` : ''}${first.message}` : ''}`;
    this.ctx.log.warn(summary, { errors });
    const error: ErrorInfo = {
      error: summary, time: now, severity: 'error', source: 'DeviceConfigStatus', retryCondition,
      ...(sha ? { entities: [{ type: 'deviceConfig', id: `sha256:${sha}` }] } : {}),
    };
    this.setStatus({ ...this.current_, ...(sha ? { rejectedSha256: sha } : {}), rejectedAt: now, error, fieldErrors: errors, unknownConfigItems });
  }

  private setStatus(s: DeviceConfigStatus): void {
    this.current_ = s;
    this.statusPub.publish('global', s);
    for (const fn of this.listeners) fn(s);
  }

  /** What is published now, as JSON text per key: the diff's starting point (kept across an in-process restart). */
  private published(): Map<ConfigType, Map<string, string>> {
    const out = new Map<ConfigType, Map<string, string>>();
    for (const [type, pub] of this.pubs) {
      out.set(type, new Map([...pub.getAll()].map(([k, v]) => [k, JSON.stringify(v)])));
    }
    return out;
  }
}

function refusalOf(s: DeviceConfigStatus): Partial<DeviceConfigStatus> {
  return {
    ...(s.rejectedSha256 ? { rejectedSha256: s.rejectedSha256 } : {}),
    ...(s.rejectedAt ? { rejectedAt: s.rejectedAt } : {}),
    ...(s.error ? { error: s.error } : {}),
  };
}
