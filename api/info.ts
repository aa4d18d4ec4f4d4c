// What a device reports: the `value` of each info message (one per object, latest
// state only; see INFO_KINDS in ./topics) and the device and app parts of a
// metrics message. JSON-friendly: names rather than numbers, RFC 3339 times,
// units in the field names. A value a VM cannot know is optional, never faked.
// Secrets never appear here: nothing carries an app's env or a datastore password.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ErrorInfoSchema, SwStateSchema, Uuid } from '../pubsub/collections/common';
import { ConfigFieldErrorSchema, DeviceConfigStatusSchema } from '../pubsub/collections/config';
import type { InfoKind } from './topics';

const strict = { additionalProperties: false } as const;
const Time = Type.String({ minLength: 20, maxLength: 40, description: 'RFC 3339' });
const Count = Type.Integer({ minimum: 0 });
const Bytes = Type.Integer({ minimum: 0 });
const Percent = Type.Number({ minimum: 0, maximum: 100 });
const Name = Type.String({ maxLength: 256 });

/** The id of the info objects a device has one of (kinds device and config). */
export const SINGLE_INFO_ID = 'global';

/**
 * Why zedbox is starting (EVE's BootReason, as far as a process can tell):
 * first-boot: no record of an earlier run on this device;
 * reboot-command / shutdown-command: zedbox stopped for that command, and the machine has booted since;
 * machine-reboot: zedbox stopped cleanly (e.g. told to by the OS) and the machine has booted since;
 * power-or-crash: the machine booted again while zedbox was still running (power loss, kernel crash, reset);
 * zedbox-restart: zedbox stopped cleanly and started again on the same machine boot;
 * zedbox-crash: zedbox died without stopping (killed, crashed) and started again on the same machine boot.
 */
export const BOOT_REASONS = [
  'first-boot', 'reboot-command', 'shutdown-command', 'machine-reboot', 'power-or-crash', 'zedbox-restart', 'zedbox-crash',
] as const;
export type BootReason = (typeof BOOT_REASONS)[number];
export const BootReasonSchema = Type.Union(BOOT_REASONS.map((r) => Type.Literal(r)));

export const DeviceHardwareSchema = Type.Object(
  {
    /** Empty in many VMs and containers: absent then. */
    manufacturer: Type.Optional(Name),
    model: Type.Optional(Name),
    /** Running in a virtual machine, when the platform says so. */
    virtual: Type.Optional(Type.Boolean()),
    cpu: Type.Object(
      {
        brand: Type.Optional(Name),
        /** Logical cores the OS schedules on. */
        cores: Type.Integer({ minimum: 1 }),
        /** Node's name for the architecture: x64, arm64, … */
        arch: Name,
      },
      strict,
    ),
    memoryTotalBytes: Bytes,
    /** Sum over the local block-device filesystems (each device counted once). */
    storageTotalBytes: Type.Optional(Bytes),
  },
  strict,
);
export type DeviceHardware = Static<typeof DeviceHardwareSchema>;

export const DeviceOsSchema = Type.Object(
  {
    distro: Type.Optional(Name),
    release: Type.Optional(Name),
    kernel: Name,
    arch: Name,
  },
  strict,
);
export type DeviceOs = Static<typeof DeviceOsSchema>;

export const CONFIG_RESULTS = ['applied', 'refused', 'none'] as const;
export type ConfigResult = (typeof CONFIG_RESULTS)[number];

export const DeviceConfigSummarySchema = Type.Object(
  {
    /** The version of the config in force. */
    appliedVersion: Type.Optional(Type.String()),
    /** The controller's seq of the config in force (absent for a local file). */
    seq: Type.Optional(Count),
    /** What happened to the last config the device received: refused means the applied one (if any) stays. */
    lastResult: Type.Union(CONFIG_RESULTS.map((r) => Type.Literal(r))),
    /** With refused: why (the summary), and every bad field by path. */
    error: Type.Optional(Type.String()),
    fieldErrors: Type.Optional(Type.Array(ConfigFieldErrorSchema)),
    /** Every known config item with its effective value (defaults filled in). */
    items: Type.Record(Type.String(), Type.String()),
    /** Config items the config set that the device does not know. */
    unknownItems: Type.Array(Type.String()),
  },
  strict,
);
export type DeviceConfigSummary = Static<typeof DeviceConfigSummarySchema>;

/** The device's ports as nim applied and tested them (the stable parts: no test times). */
export const DeviceNetworkInfoSchema = Type.Object(
  {
    /** Where the port configuration came from: zedagent (the controller), local, lastresort, or host (none: observed). */
    source: Type.String(),
    state: Type.String(),
    /** The port the controller's broker was reached through, if it was. */
    controllerVia: Type.Optional(Type.String()),
    ports: Type.Array(Type.Object({
      ifName: Type.String(),
      management: Type.Boolean(),
      up: Type.Boolean(),
      addresses: Type.Array(Type.String()),
      gateways: Type.Array(Type.String()),
      dns: Type.Array(Type.String()),
      reachesController: Type.Optional(Type.Boolean()),
      error: Type.Optional(Type.String()),
      dhcpLeases: Type.Optional(Count),
    }, strict), { maxItems: 64 }),
    errors: Type.Array(Type.String()),
  },
  strict,
);
export type DeviceNetworkInfo = Static<typeof DeviceNetworkInfoSchema>;

export const DeviceInfoSchema = Type.Object(
  {
    zedboxVersion: Name,
    nodeVersion: Type.Optional(Name),
    hostname: Name,
    /** When the machine booted. */
    machineBootTime: Type.Optional(Time),
    /** When this zedbox process started. */
    startedAt: Time,
    bootReason: BootReasonSchema,
    /** Times zedbox has started on this device, this start included (kept across reboots). */
    restartCounter: Count,
    hardware: DeviceHardwareSchema,
    os: DeviceOsSchema,
    config: DeviceConfigSummarySchema,
    /** The reboot and shutdown command counters last acted on (EVE rebootConfigCounter, shutdown_config_counter). */
    rebootCounter: Type.Optional(Count),
    shutdownCounter: Type.Optional(Count),
    /** The controller epoch the device last saw in a config. */
    controllerEpoch: Type.Optional(Count),
    /** Its ports (from nim); absent until nim reported. */
    network: Type.Optional(DeviceNetworkInfoSchema),
  },
  strict,
);
export type DeviceInfo = Static<typeof DeviceInfoSchema>;

export const AppVolumeRefInfoSchema = Type.Object(
  {
    volumeId: Uuid,
    generation: Type.Optional(Count),
    mountDir: Type.Optional(Type.String()),
    state: Type.Optional(SwStateSchema),
  },
  strict,
);

export const AppInfoSchema = Type.Object(
  {
    id: Uuid,
    name: Name,
    /** The app's own version (free text from the config). */
    version: Type.Optional(Type.String()),
    /** The device config version that last changed this app. */
    configVersion: Type.Optional(Type.String()),
    state: SwStateSchema,
    /** The config asks for it to run. */
    activate: Type.Optional(Type.Boolean()),
    /** Its container was started for the current config and not stopped since. */
    activated: Type.Optional(Type.Boolean()),
    errors: Type.Array(ErrorInfoSchema),
    volumeRefs: Type.Array(AppVolumeRefInfoSchema),
    /** The restart and purge counters last acted on. */
    restartCounter: Type.Optional(Count),
    purgeCounter: Type.Optional(Count),
    /** Times the container was restarted after it exited on its own. */
    containerRestarts: Type.Optional(Count),
    lastExitCode: Type.Optional(Type.Integer()),
    /** When the container last started. */
    bootTime: Type.Optional(Time),
  },
  strict,
);
export type AppInfo = Static<typeof AppInfoSchema>;

export const VolumeInfoSchema = Type.Object(
  {
    id: Uuid,
    name: Type.Optional(Name),
    state: SwStateSchema,
    kind: Type.Optional(Type.Union([Type.Literal('image'), Type.Literal('directory')])),
    /** The instance reported: the newest (a purge or a generation change briefly keeps older ones). */
    generation: Count,
    localGeneration: Count,
    /** Instances of this volume on the device now (more than 1 while an older one is retired). */
    instances: Type.Integer({ minimum: 1 }),
    contentTreeId: Type.Optional(Uuid),
    progressPercent: Type.Optional(Percent),
    currentBytes: Type.Optional(Bytes),
    totalBytes: Type.Optional(Bytes),
    maxSizeBytes: Type.Optional(Bytes),
    refCount: Type.Optional(Count),
    createdAt: Type.Optional(Time),
    errors: Type.Array(ErrorInfoSchema),
  },
  strict,
);
export type VolumeInfo = Static<typeof VolumeInfoSchema>;

export const ContentTreeInfoSchema = Type.Object(
  {
    id: Uuid,
    name: Type.Optional(Name),
    state: SwStateSchema,
    format: Type.Union([Type.Literal('container'), Type.Literal('raw')]),
    generation: Count,
    /** The top blob's digest, once known (from the config or the resolved tag). */
    digest: Type.Optional(Type.String()),
    blobCount: Count,
    progressPercent: Type.Optional(Percent),
    currentBytes: Type.Optional(Bytes),
    totalBytes: Type.Optional(Bytes),
    refCount: Type.Optional(Count),
    errors: Type.Array(ErrorInfoSchema),
  },
  strict,
);
export type ContentTreeInfo = Static<typeof ContentTreeInfoSchema>;

export const NETWORK_INSTANCE_STATES = ['configured', 'online', 'error'] as const;

export const NetworkInstanceInfoSchema = Type.Object(
  {
    id: Uuid,
    name: Name,
    type: Type.Union([Type.Literal('local'), Type.Literal('switch')]),
    subnet: Type.Optional(Type.String()),
    /** configured: in the config (nim, which will bring it up and say online or error, comes later). */
    state: Type.Union(NETWORK_INSTANCE_STATES.map((s) => Type.Literal(s))),
    errors: Type.Array(ErrorInfoSchema),
  },
  strict,
);
export type NetworkInstanceInfo = Static<typeof NetworkInstanceInfoSchema>;

/** DeviceConfigStatus as published on the bus, plus the controller's seq and epoch of the config in force. */
export const ConfigInfoSchema = Type.Composite(
  [DeviceConfigStatusSchema, Type.Object({ seq: Type.Optional(Count), epoch: Type.Optional(Count) })],
  strict,
);
export type ConfigInfo = Static<typeof ConfigInfoSchema>;

export const INFO_SCHEMAS: Readonly<Record<InfoKind, TSchema>> = {
  device: DeviceInfoSchema,
  app: AppInfoSchema,
  volume: VolumeInfoSchema,
  contentTree: ContentTreeInfoSchema,
  networkInstance: NetworkInstanceInfoSchema,
  config: ConfigInfoSchema,
};

export interface InfoValues {
  device: DeviceInfo;
  app: AppInfo;
  volume: VolumeInfo;
  contentTree: ContentTreeInfo;
  networkInstance: NetworkInstanceInfo;
  config: ConfigInfo;
}

// ---- metrics (MetricsBody.device and MetricsBody.apps[]) ----

export const FilesystemMetricSchema = Type.Object(
  {
    mount: Type.String(),
    /** The device or source mounted (/dev/vda1, tmpfs, …). */
    source: Type.String(),
    type: Type.Optional(Type.String()),
    sizeBytes: Bytes,
    usedBytes: Bytes,
    availableBytes: Type.Optional(Bytes),
    usedPercent: Percent,
  },
  strict,
);
export type FilesystemMetric = Static<typeof FilesystemMetricSchema>;

/** Counters since the interface appeared (the kernel's); the controller takes differences. */
export const NetworkMetricSchema = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    /** The kernel's operstate is "up" (absent when it says "unknown", as lo does). */
    up: Type.Optional(Type.Boolean()),
    rxBytes: Bytes, txBytes: Bytes,
    rxPackets: Count, txPackets: Count,
    rxErrors: Count, txErrors: Count,
    rxDrops: Count, txDrops: Count,
  },
  strict,
);
export type NetworkMetric = Static<typeof NetworkMetricSchema>;

export const DeviceMetricsSchema = Type.Object(
  {
    uptimeSeconds: Type.Optional(Type.Number({ minimum: 0 })),
    /** All cores together, over the time since the previous sample. */
    cpuPercent: Type.Optional(Percent),
    loadAverage: Type.Optional(Type.Object(
      { load1: Type.Number({ minimum: 0 }), load5: Type.Number({ minimum: 0 }), load15: Type.Number({ minimum: 0 }) },
      strict,
    )),
    memoryTotalBytes: Type.Optional(Bytes),
    /** Total minus available: what programs hold, not the page cache the kernel can drop. */
    memoryUsedBytes: Type.Optional(Bytes),
    memoryAvailableBytes: Type.Optional(Bytes),
    filesystems: Type.Optional(Type.Array(FilesystemMetricSchema)),
    network: Type.Optional(Type.Array(NetworkMetricSchema)),
    /** Readings that failed or timed out this time (their fields are absent). */
    missing: Type.Optional(Type.Array(Type.String())),
  },
  strict,
);
export type DeviceMetrics = Static<typeof DeviceMetricsSchema>;

export const AppMetricsSchema = Type.Object(
  {
    appId: Uuid,
    name: Type.Optional(Name),
    /** When the sample was taken. */
    time: Time,
    /** Of one core: 200 means two cores fully busy. */
    cpuPercent: Type.Number({ minimum: 0 }),
    cpuTotalNanos: Type.Number({ minimum: 0 }),
    memoryUsedBytes: Bytes,
    /** The container's memory limit as the runtime reports it (the host's memory when the app sets none). */
    memoryLimitBytes: Bytes,
  },
  strict,
);
export type AppMetrics = Static<typeof AppMetricsSchema>;
