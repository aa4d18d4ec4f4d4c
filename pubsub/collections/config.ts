// The device config (the document the controller sends, or a local file) and the
// collections zedagent splits it into. Field meanings follow EVE's EdgeDevConfig:
// apps refer to volumes, volumes to content trees, content trees to datastores.
// docs/device-config.md explains every field.
import { Type, type Static } from '@sinclair/typebox';
import { defineCollection } from '../catalog';
import { MaybeSealedString } from '../../lib/secrets';
import { Counter, Digest, ErrorInfoSchema, Time, Uuid } from './common';
import { NetworkPortConfigSchema } from './network';

const strict = { additionalProperties: false } as const;

export const DatastoreSchema = Type.Object(
  {
    id: Uuid,
    /** http(s): url is the base the content tree's path is appended to; registry: an OCI Distribution v2 registry. */
    type: Type.Union([Type.Literal('http'), Type.Literal('https'), Type.Literal('registry')]),
    /** http(s)://host[:port][/base] for every type (a registry over plain HTTP says http://). */
    url: Type.String({ pattern: '^https?://[^\\s]+$' }),
    username: Type.Optional(Type.String()),
    /** Registry or HTTP basic password: clear text in a local file, sealed to the device from a controller. */
    password: Type.Optional(MaybeSealedString),
    /** Extra CA certificates (PEM) to trust for this datastore. */
    caPem: Type.Optional(Type.String()),
  },
  strict,
);
export type Datastore = Static<typeof DatastoreSchema>;

export const SignatureSchema = Type.Object(
  {
    /** Which trusted publisher key signed it (DeviceConfig.publisherKeys[].id). */
    keyId: Type.String({ minLength: 1 }),
    /** base64 ed25519 signature over the ASCII digest string "sha256:<hex>". */
    signature: Type.String({ minLength: 1 }),
  },
  strict,
);

export const ContentTreeSchema = Type.Object(
  {
    id: Uuid,
    name: Type.Optional(Type.String()),
    /** Tried in order: the first is the primary, the rest are fallbacks. */
    datastoreIds: Type.Array(Uuid, { minItems: 1 }),
    /** registry: repository[:tag] or repository@sha256:…; http(s): path under the datastore url. */
    url: Type.String({ minLength: 1 }),
    /** container: an OCI or Docker image; raw: a file, copied into its volume. */
    format: Type.Union([Type.Literal('container'), Type.Literal('raw')]),
    /** The top blob's digest (image manifest or index, or the file). Empty: resolve the tag once, then hold it. */
    sha256: Type.Optional(Digest),
    sizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    /** A change re-resolves the tag and re-fetches (EVE generation_count). */
    generation: Type.Optional(Counter),
    signature: Type.Optional(SignatureSchema),
  },
  strict,
);
export type ContentTree = Static<typeof ContentTreeSchema>;

export const VolumeSchema = Type.Object(
  {
    id: Uuid,
    name: Type.Optional(Type.String()),
    origin: Type.Union([
      Type.Object({ type: Type.Literal('blank') }, strict),
      Type.Object({ type: Type.Literal('download'), contentTreeId: Uuid }, strict),
    ]),
    /** A change purges and rebuilds the volume (EVE generationCount). */
    generation: Type.Optional(Counter),
    /** 0 or absent: no limit. */
    maxSizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    readonly: Type.Optional(Type.Boolean()),
  },
  strict,
);
export type Volume = Static<typeof VolumeSchema>;

export const PortMapSchema = Type.Object(
  {
    container: Type.Integer({ minimum: 1, maximum: 65535 }),
    host: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
    /** Host address to bind (default all). */
    hostIp: Type.Optional(Type.String()),
  },
  strict,
);

export const VolumeRefSchema = Type.Object(
  {
    volumeId: Uuid,
    /** Where the volume appears in the container. The first ref is the root disk and has none. */
    mountDir: Type.Optional(Type.String({ pattern: '^/' })),
  },
  strict,
);

export const AppSchema = Type.Object(
  {
    id: Uuid,
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }),
    /** Free text the controller uses for the app's version. */
    version: Type.Optional(Type.String()),
    /** false stops the app but keeps it and its volumes. */
    activate: Type.Boolean(),
    /** In order: the first is the root disk (the container image); the rest are mounted at mountDir. */
    volumeRefs: Type.Array(VolumeRefSchema, { minItems: 1 }),
    resources: Type.Object(
      {
        memoryMiB: Type.Integer({ minimum: 4 }),
        cpus: Type.Number({ exclusiveMinimum: 0, maximum: 1024 }),
      },
      strict,
    ),
    /** Overrides the image's entrypoint and command. */
    entrypoint: Type.Optional(Type.Array(Type.String())),
    command: Type.Optional(Type.Array(Type.String())),
    /** Values are clear text or sealed to the device (opened only when the container is created). */
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), MaybeSealedString)),
    ports: Type.Optional(Type.Array(PortMapSchema)),
    networkInstanceIds: Type.Optional(Type.Array(Uuid)),
    /** Restart once each time it changes; the first value seen is only a baseline. */
    restartCounter: Type.Optional(Counter),
    /** Recreate the volumes and restart each time it changes; the first value seen is only a baseline. */
    purgeCounter: Type.Optional(Counter),
    startDelaySeconds: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  strict,
);
export type App = Static<typeof AppSchema>;

export const NetworkInstanceSchema = Type.Object(
  {
    id: Uuid,
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }),
    /** local: a private bridge with NAT to the uplink; switch: no NAT (both become Docker bridges today). */
    type: Type.Union([Type.Literal('local'), Type.Literal('switch')]),
    /** IPv4 CIDR for the instance; absent: Docker picks one. */
    subnet: Type.Optional(Type.String({ pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$' })),
  },
  strict,
);
export type NetworkInstance = Static<typeof NetworkInstanceSchema>;

export const PublisherKeySchema = Type.Object(
  {
    id: Type.String({ minLength: 1 }),
    /** base64 of the 32-byte ed25519 public key. */
    ed25519: Type.String({ minLength: 1 }),
  },
  strict,
);

/** The whole document: one config for one device. */
export const DeviceConfigSchema = Type.Object(
  {
    /** Grows with every change the controller makes; reported back as applied. */
    version: Type.String({ minLength: 1 }),
    deviceId: Type.Optional(Uuid),
    datastores: Type.Optional(Type.Array(DatastoreSchema)),
    contentTrees: Type.Optional(Type.Array(ContentTreeSchema)),
    volumes: Type.Optional(Type.Array(VolumeSchema)),
    apps: Type.Optional(Type.Array(AppSchema)),
    networkInstances: Type.Optional(Type.Array(NetworkInstanceSchema)),
    /** The device's own ports (EVE's DevicePortConfig): management ports to the controller, local networks with DHCP. */
    networkPorts: Type.Optional(Type.Array(NetworkPortConfigSchema, { maxItems: 32 })),
    /** Runtime properties (EVE config items): timers, limits. Unknown keys are reported, not fatal. */
    configItems: Type.Optional(Type.Record(Type.String(), Type.String())),
    /** Keys whose signatures make content trusted (content trees that carry a signature). */
    publisherKeys: Type.Optional(Type.Array(PublisherKeySchema)),
    /** Reboot the device once each time the counter changes; the first value seen is only a baseline. */
    reboot: Type.Optional(Type.Object({ counter: Counter }, strict)),
    /** Shut the device down once each time the counter changes; the first value seen is only a baseline. */
    shutdown: Type.Optional(Type.Object({ counter: Counter }, strict)),
  },
  strict,
);
export type DeviceConfig = Static<typeof DeviceConfigSchema>;

const configMax = 256 * 1024;

export const DatastoreConfigCollection = defineCollection({
  type: 'DatastoreConfig', owner: 'zedagent', schema: DatastoreSchema, keyOf: (v) => v.id,
  description: 'Where content comes from: an HTTP(S) server or an OCI registry, keyed by datastore id',
});

export const ContentTreeConfigCollection = defineCollection({
  type: 'ContentTreeConfig', owner: 'zedagent', schema: ContentTreeSchema, keyOf: (v) => v.id,
  description: 'Content to fetch and verify (an image or a file), keyed by content tree id',
});

/** Key of a volume generation: EVE's uuid#generation. */
export function volumeKey(id: string, generation = 0): string {
  return `${id}#${generation}`;
}

export const VolumeConfigCollection = defineCollection({
  type: 'VolumeConfig', owner: 'zedagent', schema: VolumeSchema, keyOf: (v) => volumeKey(v.id, v.generation),
  description: 'A volume the config declares (blank or from a content tree), keyed by id#generation',
});

/** A volume ref as zedagent publishes it: with the referenced volume's generation, so zedmanager can key its VolumeRefConfig. */
export const AppVolumeRefSchema = Type.Composite([VolumeRefSchema, Type.Object({ generation: Counter })], strict);
export type AppVolumeRef = Static<typeof AppVolumeRefSchema>;

export const AppInstanceConfigSchema = Type.Composite([
  Type.Omit(AppSchema, ['volumeRefs']),
  Type.Object({
    /** As in the config, each with its volume's generation (0 when the config gives none). */
    volumeRefs: Type.Array(AppVolumeRefSchema, { minItems: 1 }),
    /** The version of the device config this came from. */
    configVersion: Type.String(),
    /** Problems zedagent found that concern this app alone (e.g. a dangling volume ref). */
    errors: Type.Optional(Type.Array(Type.String())),
  }),
], strict);
export type AppInstanceConfig = Static<typeof AppInstanceConfigSchema>;

export const AppInstanceConfigCollection = defineCollection({
  type: 'AppInstanceConfig', owner: 'zedagent', schema: AppInstanceConfigSchema, keyOf: (v) => v.id,
  description: 'An app the device should have, keyed by app id', maxValueBytes: configMax,
});

export const NetworkInstanceConfigCollection = defineCollection({
  type: 'NetworkInstanceConfig', owner: 'zedagent', schema: NetworkInstanceSchema, keyOf: (v) => v.id,
  description: 'A network apps attach to, keyed by network instance id',
});

export const ConfigItemValueMapSchema = Type.Object(
  {
    /** Every known item with its effective value (the default when the config does not set it). */
    items: Type.Record(Type.String(), Type.String()),
  },
  strict,
);
export const ConfigItemValueMapCollection = defineCollection({
  type: 'ConfigItemValueMap', owner: 'zedagent', schema: ConfigItemValueMapSchema, keyOf: () => 'global',
  description: 'Runtime properties (timers, limits) with defaults filled in, key "global"',
});

export const PublisherKeysSchema = Type.Object({ keys: Type.Array(PublisherKeySchema) }, strict);
export const PublisherKeysCollection = defineCollection({
  type: 'PublisherKeys', owner: 'zedagent', schema: PublisherKeysSchema, keyOf: () => 'global',
  description: 'ed25519 keys whose content signatures the device trusts, key "global"',
});

export const ConfigFieldErrorSchema = Type.Object({ path: Type.String(), message: Type.String() }, strict);

export const DeviceConfigStatusSchema = Type.Object(
  {
    /** Where configs come from: "file:/config/device-config.json" (and later the controller). */
    source: Type.String(),
    /** The config in force (absent until one was accepted). */
    appliedVersion: Type.Optional(Type.String()),
    appliedSha256: Type.Optional(Type.String()),
    appliedAt: Type.Optional(Time),
    /** From a controller: the config's sequence number and the controller epoch it was issued in. */
    appliedSeq: Type.Optional(Type.Integer({ minimum: 0 })),
    controllerEpoch: Type.Optional(Type.Integer({ minimum: 0 })),
    /** The last config that was refused, and why: every bad field by path. */
    rejectedSha256: Type.Optional(Type.String()),
    rejectedAt: Type.Optional(Time),
    error: Type.Optional(ErrorInfoSchema),
    fieldErrors: Type.Array(ConfigFieldErrorSchema),
    /** Config items the device does not know (reported, otherwise ignored). */
    unknownConfigItems: Type.Array(Type.String()),
  },
  strict,
);
export type DeviceConfigStatus = Static<typeof DeviceConfigStatusSchema>;

export const DeviceConfigStatusCollection = defineCollection({
  type: 'DeviceConfigStatus', owner: 'zedagent', schema: DeviceConfigStatusSchema, keyOf: () => 'global',
  description: 'Which device config is applied and why the last one was refused, key "global"', maxValueBytes: configMax,
});

export const CONFIG_COLLECTIONS = [
  DatastoreConfigCollection, ContentTreeConfigCollection, VolumeConfigCollection, AppInstanceConfigCollection,
  NetworkInstanceConfigCollection, ConfigItemValueMapCollection, PublisherKeysCollection, DeviceConfigStatusCollection,
] as const;
