// Volumes between zedmanager and volumemgr (EVE's VolumeRefConfig/Status), and
// what volumemgr reports of content trees and volumes.
import { Type, type Static } from '@sinclair/typebox';
import { defineCollection } from '../catalog';
import { Counter, Digest, ErrorInfoSchema, SwStateSchema, Time, Uuid } from './common';

const strict = { additionalProperties: false } as const;

const Progress = {
  currentBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  totalBytes: Type.Optional(Type.Integer({ minimum: 0 })),
};

export const BlobProgressSchema = Type.Object(
  {
    digest: Digest,
    state: SwStateSchema,
    mediaType: Type.Optional(Type.String()),
    sizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    ...Progress,
  },
  strict,
);

export const ContentTreeStatusSchema = Type.Object(
  {
    contentTreeId: Uuid,
    generation: Counter,
    name: Type.Optional(Type.String()),
    format: Type.Union([Type.Literal('container'), Type.Literal('raw')]),
    /** Least advanced of its blobs until LOADED. */
    state: SwStateSchema,
    /** The top blob: from the config, or the resolved tag. */
    digest: Type.Optional(Digest),
    blobs: Type.Array(BlobProgressSchema),
    /** container: the Docker image loaded from the verified blobs (repo:tag zedbox owns). */
    imageRef: Type.Optional(Type.String()),
    imageId: Type.Optional(Type.String()),
    /** raw: the verified file. */
    path: Type.Optional(Type.String()),
    /** Volumes using it. */
    refCount: Counter,
    ...Progress,
    error: Type.Optional(ErrorInfoSchema),
  },
  strict,
);
export type ContentTreeStatus = Static<typeof ContentTreeStatusSchema>;
export const ContentTreeStatusCollection = defineCollection({
  type: 'ContentTreeStatus', owner: 'volumemgr', schema: ContentTreeStatusSchema, keyOf: (v) => v.contentTreeId,
  description: 'Fetch, verify and load progress of one content tree, keyed by content tree id', maxValueBytes: 256 * 1024,
});

/**
 * One instance of a volume: EVE's uuid#generation, plus the app's purge generation
 * (a purge makes fresh volumes while the old ones still serve the running app).
 */
export function volumeInstanceKey(volumeId: string, generation: number, localGeneration: number): string {
  return `${volumeId}#${generation}#${localGeneration}`;
}

export const VolumeStatusSchema = Type.Object(
  {
    volumeId: Uuid,
    generation: Counter,
    localGeneration: Counter,
    name: Type.Optional(Type.String()),
    state: SwStateSchema, // ... LOADED, CREATING_VOLUME, CREATED_VOLUME
    /** image: the container's root disk (a Docker image); directory: a host directory to mount. */
    kind: Type.Union([Type.Literal('image'), Type.Literal('directory')]),
    contentTreeId: Type.Optional(Uuid),
    /** What it was made from (kept until the volume is gone, even if the content tree changes). */
    contentDigest: Type.Optional(Digest),
    imageRef: Type.Optional(Type.String()),
    imageId: Type.Optional(Type.String()),
    hostPath: Type.Optional(Type.String()),
    readonly: Type.Boolean(),
    maxSizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    /** (1 if its VolumeConfig exists) + the VolumeRefConfigs naming it; removed at 0. */
    refCount: Counter,
    createdAt: Type.Optional(Time),
    ...Progress,
    error: Type.Optional(ErrorInfoSchema),
  },
  strict,
);
export type VolumeStatus = Static<typeof VolumeStatusSchema>;
export const VolumeStatusCollection = defineCollection({
  type: 'VolumeStatus', owner: 'volumemgr', schema: VolumeStatusSchema,
  keyOf: (v) => volumeInstanceKey(v.volumeId, v.generation, v.localGeneration),
  description: 'One volume instance, keyed by volumeId#generation#localGeneration',
});

export function volumeRefKey(r: { volumeId: string; generation: number; localGeneration: number; appId: string }): string {
  return `${volumeInstanceKey(r.volumeId, r.generation, r.localGeneration)}#${r.appId}`;
}

export const VolumeRefConfigSchema = Type.Object(
  {
    appId: Uuid,
    volumeId: Uuid,
    generation: Counter,
    /** The app's purge generation: a purge asks for fresh instances. */
    localGeneration: Counter,
    /** true: fetch and verify only (the old instance may still run); false: create the volume. */
    verifyOnly: Type.Boolean(),
    mountDir: Type.Optional(Type.String()),
  },
  strict,
);
export type VolumeRefConfig = Static<typeof VolumeRefConfigSchema>;
export const VolumeRefConfigCollection = defineCollection({
  type: 'VolumeRefConfig', owner: 'zedmanager', schema: VolumeRefConfigSchema, keyOf: volumeRefKey,
  description: "An app's use of a volume, keyed by volumeId#generation#localGeneration#appId",
});

export const VolumeRefStatusSchema = Type.Object(
  {
    appId: Uuid,
    volumeId: Uuid,
    generation: Counter,
    localGeneration: Counter,
    verifyOnly: Type.Boolean(),
    state: SwStateSchema,
    kind: Type.Optional(Type.Union([Type.Literal('image'), Type.Literal('directory')])),
    imageRef: Type.Optional(Type.String()),
    imageId: Type.Optional(Type.String()),
    hostPath: Type.Optional(Type.String()),
    mountDir: Type.Optional(Type.String()),
    readonly: Type.Boolean(),
    ...Progress,
    error: Type.Optional(ErrorInfoSchema),
  },
  strict,
);
export type VolumeRefStatus = Static<typeof VolumeRefStatusSchema>;
export const VolumeRefStatusCollection = defineCollection({
  type: 'VolumeRefStatus', owner: 'volumemgr', schema: VolumeRefStatusSchema, keyOf: volumeRefKey,
  description: "The state of an app's volume as the app sees it, keyed like its VolumeRefConfig",
});

export const ResolvedTagSchema = Type.Object(
  { contentTreeId: Uuid, generation: Counter, reference: Type.String(), digest: Digest, resolvedAt: Time },
  strict,
);
export const ResolvedTagCollection = defineCollection({
  type: 'ResolvedTag', owner: 'volumemgr', schema: ResolvedTagSchema, persistent: true,
  keyOf: (v) => `${v.contentTreeId}#${v.generation}`,
  description: 'A tag latched to the digest it first resolved to, so a restart never moves an app to new content (EVE AppAndImageToHash)',
});

export const VOLUME_COLLECTIONS = [
  ContentTreeStatusCollection, VolumeStatusCollection, VolumeRefConfigCollection, VolumeRefStatusCollection, ResolvedTagCollection,
] as const;
