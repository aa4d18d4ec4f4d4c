// What the device tells the controller: every object's latest state as signed,
// retained info (through the outbox, so an outage loses nothing), device info
// on change and every timer.deviceinfo.interval, and metrics every
// timer.metric.interval (lossy by design: counters are cumulative).
import { seal } from '../../api/envelope';
import type { Signer } from '../../lib/keys';
import { KINDS, type InfoBody, type MetricsBody } from '../../api/messages';
import { topics, type InfoKind } from '../../api/topics';
import {
  AppInstanceStatusCollection, ContentTreeStatusCollection, DeviceNetworkStatusCollection, DomainMetricCollection, VolumeStatusCollection,
  configItem, type AppInstanceConfig, type NetworkInstance,
} from '../../pubsub/collections';
import { VERSION } from '../../lib/version';
import type { AgentContext } from '../agent';
import type { BootReason } from '../../api/info';
import type { ConfigApplier } from './config-applier';
import type { OpsRecord } from './device-ops';
import { appInfo, appMetrics, configInfo, contentTreeInfo, deviceInfo, deviceMetrics, networkInstanceInfo, volumeInfos } from './info-build';
import type { Outbox } from './outbox';
import type { SeqAllocator } from './seq-allocator';
import type { HardwareSnapshot, MetricsSampler } from './system-driver';
import { expectedKeys, staleKeys, type ReportedKeys } from './reported-keys';
import type { Volume } from '../../pubsub/collections/config';

export interface ReporterDeps {
  deviceId: string;
  signer: Signer;
  kid: string;
  outbox: Outbox;
  seq: SeqAllocator;
  applier: ConfigApplier;
  hardware: HardwareSnapshot;
  sampler: MetricsSampler;
  startedAt: string;
  bootReason: BootReason;
  restartCounter: number;
  ops: () => OpsRecord;
  /** What earlier runs reported (persisted). */
  reportedKeys: ReportedKeys;
  /** Sends metrics if the link is up; false when dropped. */
  sendMetrics: (topic: string, payload: string) => boolean;
}

/** Device info goes first after an outage, then config status, then the rest. */
const PRIORITY: Record<string, number> = { device: 0, config: 1, app: 2 };

export function infoPriority(key: string): number {
  return PRIORITY[key.split('/')[0] ?? ''] ?? 3;
}

export class Reporter {
  /** The last value queued per object (JSON), so an unchanged object is not sent again. */
  private readonly sentValues = new Map<string, string>();
  private readonly apps;
  private readonly volumes;
  private readonly trees;
  private readonly metrics;
  private readonly network;
  private scheduled = false;
  private epoch: number | undefined;
  metricsSent = 0;
  metricsDropped = 0;

  constructor(private readonly ctx: AgentContext, private readonly d: ReporterDeps) {
    const changed = { create: () => this.schedule(), modify: () => this.schedule(), delete: () => this.schedule(), synchronized: () => this.schedule() };
    this.apps = ctx.subscribe(AppInstanceStatusCollection, changed);
    this.volumes = ctx.subscribe(VolumeStatusCollection, changed);
    this.trees = ctx.subscribe(ContentTreeStatusCollection, changed);
    this.metrics = ctx.subscribe(DomainMetricCollection, {});
    this.network = ctx.subscribe(DeviceNetworkStatusCollection, changed);
    d.applier.onStatus(() => this.schedule());
    // The epoch of a config applied before the reporter existed (the checkpoint at boot).
    this.epoch = d.applier.status.controllerEpoch;
  }

  start(): void {
    this.schedule();
    this.scheduleDeviceInfo();
    this.scheduleMetrics();
  }

  /** A new controller epoch: the controller lost its view, so everything is sent again. */
  epochSeen(epoch: number): void {
    if (this.epoch !== undefined && this.epoch !== epoch) {
      this.ctx.log.info('controller epoch changed: resending all info', { from: this.epoch, to: epoch });
      this.sentValues.clear();
    }
    this.epoch = epoch;
    this.schedule();
  }

  schedule(): void {
    if (this.scheduled || this.ctx.signal.aborted) return;
    this.scheduled = true;
    // Bursts (an app's states racing through) coalesce into one pass: only the latest state is sent.
    this.ctx.setTimeout(() => {
      this.scheduled = false;
      this.pass();
    }, 50);
  }

  /** Builds every object's info and queues those that changed or disappeared. */
  pass(): void {
    const want = new Map<string, { kind: InfoKind; id: string; value: unknown }>();
    const put = (kind: InfoKind, id: string, value: unknown): void => {
      if (value !== undefined) want.set(`${kind}/${id}`, { kind, id, value });
    };
    const applier = this.d.applier;
    const appConfigs = applier.values<AppInstanceConfig>('AppInstanceConfig');
    const appIds = new Set([...appConfigs.keys(), ...this.apps.getAll().keys()]);
    for (const id of appIds) put('app', id, appInfo(this.apps.get(id), appConfigs.get(id)));
    for (const [id, v] of volumeInfos(this.volumes.getAll().values())) put('volume', id, v);
    for (const [id, s] of this.trees.getAll()) put('contentTree', id, contentTreeInfo(s));
    for (const [id, ni] of applier.values<NetworkInstance>('NetworkInstanceConfig')) put('networkInstance', id, networkInstanceInfo(ni));
    const status = applier.status;
    put('config', 'global', configInfo(status, { seq: status.appliedSeq, epoch: status.controllerEpoch }));
    put('device', 'global', this.deviceInfoValue());

    for (const [key, w] of want) {
      const text = JSON.stringify(w.value);
      if (this.sentValues.get(key) === text) continue;
      this.sentValues.set(key, text);
      this.queue(w.kind, w.id, { value: w.value });
    }
    for (const key of [...this.sentValues.keys()]) {
      if (want.has(key)) continue;
      this.sentValues.delete(key);
      this.tombstone(key);
    }
    this.settlePrior();
    this.d.reportedKeys.save(this.sentValues.keys());
  }

  /** Once a config is in force, what an earlier run reported and nothing names any more is reported deleted. */
  private settlePrior(): void {
    const known = this.d.reportedKeys;
    const applier = this.d.applier;
    if (!known.prior || applier.status.appliedVersion === undefined) return;
    const expected = expectedKeys({
      apps: applier.values('AppInstanceConfig').keys(),
      volumes: applier.values<Volume>('VolumeConfig').values(),
      contentTrees: applier.values('ContentTreeConfig').keys(),
      networkInstances: applier.values('NetworkInstanceConfig').keys(),
    });
    const stale = staleKeys(known.prior, (k) => this.sentValues.has(k), expected);
    known.prior = undefined;
    if (stale.length) this.ctx.log.info('reporting objects gone while zedagent was not running', { objects: stale });
    for (const key of stale) this.tombstone(key);
  }

  private tombstone(key: string): void {
    const [kind, ...rest] = key.split('/');
    this.queue(kind as InfoKind, rest.join('/'), { deleted: true });
  }

  private deviceInfoValue(): unknown {
    const status = this.d.applier.status;
    const ops = this.d.ops();
    const items = this.items();
    const network = this.network.get('global');
    return deviceInfo({
      zedboxVersion: VERSION, nodeVersion: process.version, system: this.d.hardware, startedAt: this.d.startedAt,
      bootReason: this.d.bootReason, restartCounter: this.d.restartCounter, configStatus: status,
      ...(items ? { configItems: items } : {}),
      ...(status.appliedSeq !== undefined ? { configSeq: status.appliedSeq } : {}),
      ...(ops.reboot !== undefined ? { rebootCounter: ops.reboot } : {}),
      ...(ops.shutdown !== undefined ? { shutdownCounter: ops.shutdown } : {}),
      ...(status.controllerEpoch !== undefined ? { controllerEpoch: status.controllerEpoch } : {}),
      ...(network ? { network } : {}),
    });
  }

  private queue(kind: InfoKind, id: string, content: { value: unknown } | { deleted: true }): void {
    const body: InfoBody = { deviceId: this.d.deviceId, kind, id, seq: this.d.seq.take(), time: new Date().toISOString(), ...content } as InfoBody;
    const payload = seal(KINDS.info, body, this.d.signer, this.d.kid).toString();
    this.d.outbox.put(`${kind}/${id}`, { topic: topics.info(this.d.deviceId, kind, id), payload, retain: true });
  }

  private items(): Readonly<Record<string, string>> | undefined {
    return this.d.applier.values<{ items: Record<string, string> }>('ConfigItemValueMap').get('global')?.items;
  }

  /** Device info again even when unchanged (its uptime-related fields aside, the controller sees it is alive). */
  private scheduleDeviceInfo(): void {
    const s = configItem(this.items(), 'timer.deviceinfo.interval');
    this.ctx.setTimeout(() => {
      this.sentValues.delete('device/global');
      this.schedule();
      this.scheduleDeviceInfo();
    }, s * 1000 * (0.8 + Math.random() * 0.4));
  }

  private scheduleMetrics(): void {
    const s = configItem(this.items(), 'timer.metric.interval');
    this.ctx.setTimeout(() => {
      void this.sendMetrics(s).finally(() => this.scheduleMetrics());
    }, s * 1000);
  }

  private async sendMetrics(intervalSeconds: number): Promise<void> {
    const sample = await this.d.sampler.sample();
    if (this.ctx.signal.aborted) return;
    const names = this.d.applier.values<AppInstanceConfig>('AppInstanceConfig');
    const body: MetricsBody = {
      deviceId: this.d.deviceId, seq: this.d.seq.take(), time: new Date().toISOString(), intervalSeconds,
      device: deviceMetrics(sample),
      apps: [...this.metrics.getAll().values()].map((m) => appMetrics(m, names.get(m.appId)?.name)),
    };
    const payload = seal(KINDS.metrics, body, this.d.signer, this.d.kid).toString();
    if (this.d.sendMetrics(topics.metrics(this.d.deviceId), payload)) this.metricsSent++;
    else this.metricsDropped++;
  }
}
