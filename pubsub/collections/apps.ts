// App instances: zedmanager's state machine output, and what it asks domainmgr
// to run (EVE's AppInstanceStatus, DomainConfig, DomainStatus).
import { Type, type Static } from '@sinclair/typebox';
import { MaybeSealedString } from '../../lib/secrets';
import { defineCollection } from '../catalog';
import { Counter, ErrorInfoSchema, SwStateSchema, Time, Uuid } from './common';
import { PortMapSchema } from './config';

const strict = { additionalProperties: false } as const;

export const MountSchema = Type.Object(
  { hostPath: Type.String({ pattern: '^/' }), containerPath: Type.String({ pattern: '^/' }), readonly: Type.Boolean() },
  strict,
);

export const DomainConfigSchema = Type.Object(
  {
    appId: Uuid,
    /** The app's name; the container is zedbox-<name>-<first 8 of appId>. */
    name: Type.String({ minLength: 1 }),
    /** true: should run; false: stopped (the container stays, HALTED). */
    activate: Type.Boolean(),
    imageRef: Type.String({ minLength: 1 }),
    entrypoint: Type.Optional(Type.Array(Type.String())),
    command: Type.Optional(Type.Array(Type.String())),
    /** Sealed values stay sealed until domainmgr creates the container. */
    env: Type.Record(Type.String(), MaybeSealedString),
    ports: Type.Array(PortMapSchema),
    memoryMiB: Type.Integer({ minimum: 4 }),
    cpus: Type.Number({ exclusiveMinimum: 0 }),
    mounts: Type.Array(MountSchema),
    networkInstanceIds: Type.Array(Uuid),
    /**
     * Changes whenever the container must be created anew (image, volumes, spec).
     * domainmgr recreates a container whose label differs; it never restarts one that matches.
     */
    specHash: Type.String({ minLength: 1 }),
  },
  strict,
);
export type DomainConfig = Static<typeof DomainConfigSchema>;
export const DomainConfigCollection = defineCollection({
  type: 'DomainConfig', owner: 'zedmanager', schema: DomainConfigSchema, keyOf: (v) => v.appId,
  description: 'A container to run (or keep stopped), keyed by app id', maxValueBytes: 256 * 1024,
});

export const DomainStatusSchema = Type.Object(
  {
    appId: Uuid,
    name: Type.String(),
    /** BOOTING, RUNNING, HALTING, HALTED, BROKEN (crash loop capped), or INITIAL. */
    state: SwStateSchema,
    /** The container is running as configured. */
    activated: Type.Boolean(),
    specHash: Type.String(),
    containerId: Type.Optional(Type.String()),
    containerName: Type.Optional(Type.String()),
    startedAt: Type.Optional(Time),
    /** Restarts after the container exited on its own. */
    restarts: Counter,
    lastExitCode: Type.Optional(Type.Integer()),
    lastExitAt: Type.Optional(Time),
    /** The container's last output lines when it last exited. */
    lastLogLines: Type.Optional(Type.Array(Type.String())),
    nextRestartAt: Type.Optional(Time),
    error: Type.Optional(ErrorInfoSchema),
  },
  strict,
);
export type DomainStatus = Static<typeof DomainStatusSchema>;
export const DomainStatusCollection = defineCollection({
  type: 'DomainStatus', owner: 'domainmgr', schema: DomainStatusSchema, keyOf: (v) => v.appId,
  description: 'The container of one app as Docker runs it, keyed by app id',
});

export const DomainMetricSchema = Type.Object(
  {
    appId: Uuid,
    time: Time,
    cpuPercent: Type.Number({ minimum: 0 }),
    cpuTotalNanos: Type.Number({ minimum: 0 }),
    memoryBytes: Type.Integer({ minimum: 0 }),
    memoryLimitBytes: Type.Integer({ minimum: 0 }),
  },
  strict,
);
export type DomainMetric = Static<typeof DomainMetricSchema>;
export const DomainMetricCollection = defineCollection({
  type: 'DomainMetric', owner: 'domainmgr', schema: DomainMetricSchema, keyOf: (v) => v.appId,
  description: 'CPU and memory of one running app, keyed by app id',
});

export const Inprogress = Type.Union([
  Type.Literal('none'),
  Type.Literal('download-and-verify'),
  Type.Literal('bring-down'),
  Type.Literal('recreate-volumes'),
  Type.Literal('bring-up'),
]);

export const AppVolumeSchema = Type.Object(
  {
    volumeId: Uuid,
    generation: Counter,
    localGeneration: Counter,
    mountDir: Type.Optional(Type.String()),
    state: SwStateSchema,
    currentBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    totalBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  strict,
);

export const AppInstanceStatusSchema = Type.Object(
  {
    appId: Uuid,
    name: Type.String(),
    version: Type.Optional(Type.String()),
    configVersion: Type.String(),
    state: SwStateSchema,
    /** The container was started for the current config and not stopped since. */
    activated: Type.Boolean(),
    restartInprogress: Inprogress,
    purgeInprogress: Inprogress,
    /** Counters as processed (the baseline, or the last acted on). */
    restartCounter: Type.Optional(Counter),
    purgeCounter: Type.Optional(Counter),
    localGeneration: Counter,
    volumes: Type.Array(AppVolumeSchema),
    /** During a purge or a volume change: the instances the old container still uses, dropped once the new one runs. */
    retiringVolumes: Type.Optional(Type.Array(AppVolumeSchema)),
    containerId: Type.Optional(Type.String()),
    restarts: Counter,
    lastExitCode: Type.Optional(Type.Integer()),
    bootTime: Type.Optional(Time),
    /** The most severe current error; all of them in errors. */
    error: Type.Optional(ErrorInfoSchema),
    errors: Type.Array(ErrorInfoSchema),
  },
  strict,
);
export type AppInstanceStatus = Static<typeof AppInstanceStatusSchema>;
export const AppInstanceStatusCollection = defineCollection({
  type: 'AppInstanceStatus', owner: 'zedmanager', schema: AppInstanceStatusSchema, keyOf: (v) => v.appId,
  description: 'Where one app is in its life (EVE states), with its errors, keyed by app id', maxValueBytes: 256 * 1024,
});

export const AppInstanceSummarySchema = Type.Object(
  {
    total: Counter, starting: Counter, running: Counter, stopping: Counter, halted: Counter, error: Counter,
  },
  strict,
);
export const AppInstanceSummaryCollection = defineCollection({
  type: 'AppInstanceSummary', owner: 'zedmanager', schema: AppInstanceSummarySchema, keyOf: () => 'global',
  description: 'How many apps are starting, running, stopping, halted or in error, key "global"',
});

export const AppCountersSchema = Type.Object(
  {
    appId: Uuid,
    /** The last restart/purge counter acted on (or the baseline first seen). */
    restartCounter: Type.Optional(Counter),
    purgeCounter: Type.Optional(Counter),
    /** Purges completed for this app; names its volume instances. */
    localGeneration: Counter,
  },
  strict,
);
export type AppCounters = Static<typeof AppCountersSchema>;
export const AppCountersCollection = defineCollection({
  type: 'AppCounters', owner: 'zedmanager', schema: AppCountersSchema, persistent: true, keyOf: (v) => v.appId,
  description: "An app's processed restart and purge counters, kept across reboots (EVE UuidToNum), keyed by app id",
});

export const APP_COLLECTIONS = [
  DomainConfigCollection, DomainStatusCollection, DomainMetricCollection, AppInstanceStatusCollection,
  AppInstanceSummaryCollection, AppCountersCollection,
] as const;
