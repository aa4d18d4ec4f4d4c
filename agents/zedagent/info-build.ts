// From what the agents publish on the bus (and what the system driver read) to
// the info and metrics values zedagent reports (api/info.ts). Pure: no I/O, no
// clock. Each builder copies fields by name, so nothing new on the bus (an
// app's env, a datastore password) can leak into a report by accident.
import type {
  AppInfo, BootReason, ConfigInfo, ConfigResult, ContentTreeInfo, DeviceConfigSummary, DeviceInfo, DeviceMetrics, DeviceNetworkInfo,
  AppMetrics, FilesystemMetric, NetworkInstanceInfo, NetworkMetric, VolumeInfo,
} from '../../api/info';
import type { AppInstanceStatus, DomainMetric } from '../../pubsub/collections/apps';
import type { SwState } from '../../pubsub/collections/common';
import type { AppInstanceConfig, DeviceConfigStatus, NetworkInstance } from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import type { DeviceNetworkStatus } from '../../pubsub/collections/network';
import type { ContentTreeStatus, VolumeStatus } from '../../pubsub/collections/volumes';
import { localFilesystems, type FilesystemReading } from './filesystems';
import type { DeviceSample, HardwareSnapshot } from './system-driver';

/** Drops undefined fields: the JSON is the same, and values compare and validate cleanly. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Progress from bytes when the total is known; 100 once the object is done; else unknown. */
function progressPercent(currentBytes: number | undefined, totalBytes: number | undefined, done: boolean): number | undefined {
  if (done) return 100;
  if (currentBytes === undefined || !totalBytes) return undefined;
  return Math.min(100, Math.floor((currentBytes * 100) / totalBytes));
}

/**
 * An app as the controller sees it: zedmanager's status, with what only the config knows.
 * undefined when neither exists (the app is gone: report it deleted).
 * Deliberately without env, command or ports: env values may be secrets.
 */
export function appInfo(status: AppInstanceStatus | undefined, config: AppInstanceConfig | undefined): AppInfo | undefined {
  if (!status && !config) return undefined;
  const volumeRefs = status
    ? status.volumes.map((v) => compact({ volumeId: v.volumeId, generation: v.generation, mountDir: v.mountDir, state: v.state }))
    : config!.volumeRefs.map((r) => compact({ volumeId: r.volumeId, generation: r.generation, mountDir: r.mountDir }));
  return compact({
    id: status?.appId ?? config!.id,
    name: status?.name || config?.name || '',
    version: config?.version ?? status?.version,
    // The version the state refers to; before zedmanager has seen the app, the config's.
    configVersion: status?.configVersion ?? config?.configVersion,
    state: status?.state ?? ('INITIAL' as SwState),
    activate: config?.activate,
    activated: status?.activated,
    errors: status ? status.errors.map((e) => ({ ...e })) : [],
    volumeRefs,
    restartCounter: status?.restartCounter,
    purgeCounter: status?.purgeCounter,
    containerRestarts: status?.restarts,
    lastExitCode: status?.lastExitCode,
    bootTime: status?.bootTime,
  });
}

/**
 * One volume, from all its instances on the bus (VolumeStatus is keyed id#generation#localGeneration,
 * an info object by id): the newest instance is reported. undefined when there is none (deleted).
 */
export function volumeInfo(instances: readonly VolumeStatus[]): VolumeInfo | undefined {
  if (instances.length === 0) return undefined;
  const newest = instances.reduce((a, b) =>
    b.generation > a.generation || (b.generation === a.generation && b.localGeneration > a.localGeneration) ? b : a);
  return compact({
    id: newest.volumeId,
    name: newest.name,
    state: newest.state,
    kind: newest.kind,
    generation: newest.generation,
    localGeneration: newest.localGeneration,
    instances: instances.length,
    contentTreeId: newest.contentTreeId,
    progressPercent: progressPercent(newest.currentBytes, newest.totalBytes, newest.state === 'CREATED_VOLUME'),
    currentBytes: newest.currentBytes,
    totalBytes: newest.totalBytes,
    maxSizeBytes: newest.maxSizeBytes,
    refCount: newest.refCount,
    createdAt: newest.createdAt,
    errors: newest.error ? [{ ...newest.error }] : [],
  });
}

/** Every volume on the bus, grouped by id, as info values keyed by volume id. */
export function volumeInfos(all: Iterable<VolumeStatus>): Map<string, VolumeInfo> {
  const byId = new Map<string, VolumeStatus[]>();
  for (const v of all) byId.set(v.volumeId, [...(byId.get(v.volumeId) ?? []), v]);
  return new Map([...byId].map(([id, list]) => [id, volumeInfo(list)!]));
}

export function contentTreeInfo(status: ContentTreeStatus): ContentTreeInfo {
  const done = status.state === 'LOADED' || status.state === 'REMOTELOADED';
  return compact({
    id: status.contentTreeId,
    name: status.name,
    state: status.state,
    format: status.format,
    generation: status.generation,
    digest: status.digest,
    blobCount: status.blobs.length,
    progressPercent: progressPercent(status.currentBytes, status.totalBytes, done),
    currentBytes: status.currentBytes,
    totalBytes: status.totalBytes,
    refCount: status.refCount,
    errors: status.error ? [{ ...status.error }] : [],
  });
}

/** From the config alone until nim reports real state. */
export function networkInstanceInfo(config: NetworkInstance): NetworkInstanceInfo {
  return compact({ id: config.id, name: config.name, type: config.type, subnet: config.subnet, state: 'configured' as const, errors: [] });
}

/** DeviceConfigStatus as is, with the controller's seq and epoch of the config in force when there is one. */
export function configInfo(status: DeviceConfigStatus, from: { seq?: number; epoch?: number } = {}): ConfigInfo {
  return compact({ ...status, fieldErrors: status.fieldErrors.map((e) => ({ ...e })), seq: from.seq, epoch: from.epoch });
}

/**
 * What happened to the last config received. zedagent drops the refusal fields when a config is
 * applied, and keeps them only while the last one received stays refused.
 */
export function configResult(status: DeviceConfigStatus | undefined): ConfigResult {
  if (status?.rejectedAt) return 'refused';
  return status?.appliedVersion ? 'applied' : 'none';
}

export interface DeviceInfoInputs {
  zedboxVersion: string;
  nodeVersion?: string;
  /** readHardware() at start. */
  system: HardwareSnapshot;
  /** When this zedbox process started. */
  startedAt: string;
  bootReason: BootReason;
  restartCounter: number;
  configStatus?: DeviceConfigStatus;
  /** ConfigItemValueMap.items; the defaults until zedagent published them. */
  configItems?: Readonly<Record<string, string>>;
  /** Unknown config items; DeviceConfigStatus.unknownConfigItems when not given. */
  unknownConfigItems?: readonly string[];
  /** The controller's seq of the config in force (absent for a local file). */
  configSeq?: number;
  rebootCounter?: number;
  shutdownCounter?: number;
  controllerEpoch?: number;
  /** nim's DeviceNetworkStatus. */
  network?: Readonly<DeviceNetworkStatus>;
}

/** The device's network as the controller sees it: what a person would look at, without the test times (they change every test). */
export function networkInfo(n: Readonly<DeviceNetworkStatus>): DeviceNetworkInfo {
  return compact({
    source: n.dpcKey,
    state: n.state,
    controllerVia: n.controller?.reachable ? n.controller.via : undefined,
    ports: n.ports.map((p) => compact({
      ifName: p.ifName, management: p.management, up: p.up, addresses: [...p.addresses], gateways: [...p.gateways], dns: [...p.dns],
      reachesController: p.reachesController, error: p.error, dhcpLeases: p.dhcpServer?.leases,
    })),
    errors: [...n.errors],
  });
}

export function deviceInfo(inputs: DeviceInfoInputs): DeviceInfo {
  const st = inputs.configStatus;
  const lastResult = configResult(st);
  const refused = lastResult === 'refused';
  const config: DeviceConfigSummary = compact({
    appliedVersion: st?.appliedVersion,
    seq: st?.appliedVersion !== undefined ? inputs.configSeq : undefined,
    lastResult,
    error: refused ? st?.error?.error : undefined,
    fieldErrors: refused && st?.fieldErrors.length ? st.fieldErrors.map((e) => ({ ...e })) : undefined,
    items: { ...(inputs.configItems ?? defaultConfigItems()) },
    unknownItems: [...(inputs.unknownConfigItems ?? st?.unknownConfigItems ?? [])],
  });
  const sys = inputs.system;
  return compact({
    zedboxVersion: inputs.zedboxVersion,
    nodeVersion: inputs.nodeVersion,
    hostname: sys.hostname,
    machineBootTime: sys.machineBootTime,
    startedAt: inputs.startedAt,
    bootReason: inputs.bootReason,
    restartCounter: inputs.restartCounter,
    hardware: compact({ ...sys.hardware, cpu: compact({ ...sys.hardware.cpu }) }),
    os: compact({ ...sys.os }),
    config,
    rebootCounter: inputs.rebootCounter,
    shutdownCounter: inputs.shutdownCounter,
    controllerEpoch: inputs.controllerEpoch,
    network: inputs.network ? networkInfo(inputs.network) : undefined,
  });
}

export function appMetrics(metric: DomainMetric, name?: string): AppMetrics {
  return compact({
    appId: metric.appId,
    name,
    time: metric.time,
    cpuPercent: metric.cpuPercent,
    cpuTotalNanos: metric.cpuTotalNanos,
    memoryUsedBytes: metric.memoryBytes,
    memoryLimitBytes: metric.memoryLimitBytes,
  });
}

/** Where container runtimes mount each container's root: the same disk again, once per container. */
const round2 = (n: number): number => Math.round(n * 100) / 100;
const bytes = (n: number): number => Math.max(0, Math.round(n));

export function deviceMetrics(sample: DeviceSample): DeviceMetrics {
  const missing = new Set(sample.missing);
  let cpuPercent: number | undefined;
  if (sample.cpuPercent !== undefined && Number.isFinite(sample.cpuPercent)) cpuPercent = round2(Math.min(100, Math.max(0, sample.cpuPercent)));
  else missing.add('cpu');
  const mem = sample.memory;
  const load = sample.loadAverage;
  return compact({
    uptimeSeconds: sample.uptimeSeconds,
    cpuPercent,
    loadAverage: load ? { load1: round2(load[0]), load5: round2(load[1]), load15: round2(load[2]) } : undefined,
    memoryTotalBytes: mem ? bytes(mem.totalBytes) : undefined,
    memoryUsedBytes: mem ? bytes(mem.totalBytes - mem.availableBytes) : undefined,
    memoryAvailableBytes: mem ? bytes(mem.availableBytes) : undefined,
    filesystems: sample.filesystems ? localFilesystems(sample.filesystems).map(filesystemMetric) : undefined,
    network: sample.network
      ? [...sample.network].sort((a, b) => a.name.localeCompare(b.name)).map((n): NetworkMetric => compact({
        name: n.name,
        // lo says "unknown": neither up nor down.
        up: n.operstate === 'up' ? true : n.operstate === undefined || n.operstate === 'unknown' ? undefined : false,
        rxBytes: bytes(n.rxBytes), txBytes: bytes(n.txBytes),
        rxPackets: bytes(n.rxPackets), txPackets: bytes(n.txPackets),
        rxErrors: bytes(n.rxErrors), txErrors: bytes(n.txErrors),
        rxDrops: bytes(n.rxDrops), txDrops: bytes(n.txDrops),
      }))
      : undefined,
    missing: missing.size ? [...missing].sort() : undefined,
  });
}

function filesystemMetric(f: FilesystemReading): FilesystemMetric {
  return compact({
    mount: f.mount,
    source: f.source,
    type: f.type || undefined,
    sizeBytes: bytes(f.sizeBytes),
    usedBytes: bytes(f.usedBytes),
    availableBytes: f.availableBytes === undefined ? undefined : bytes(f.availableBytes),
    usedPercent: f.sizeBytes > 0 ? round2(Math.min(100, (f.usedBytes * 100) / f.sizeBytes)) : 0,
  });
}
