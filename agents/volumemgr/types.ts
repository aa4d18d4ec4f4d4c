// What volumemgr's planner reads and returns. The planner is pure: everything it
// knows arrives in a PlanInput (bus state, its own memory, facts gathered by the
// drivers), and everything it wants done leaves as desired publications and Steps.
import type { Static } from '@sinclair/typebox';
import type { ErrorInfo } from '../../pubsub/collections/common';
import type { ContentTree, Datastore, Volume } from '../../pubsub/collections/config';
import type {
  DownloaderConfig, DownloaderStatus, ResolveConfigSchema, ResolveStatus, VerifyImageConfig, VerifyImageStatus,
} from '../../pubsub/collections/content';
import type {
  ContentTreeStatus, ResolvedTagSchema, VolumeRefConfig, VolumeRefStatus, VolumeStatus,
} from '../../pubsub/collections/volumes';

export type ResolveConfig = Static<typeof ResolveConfigSchema>;
export type ResolvedTag = Static<typeof ResolvedTagSchema>;
type RMap<V> = ReadonlyMap<string, Readonly<V>>;

/** A blob a manifest names: what to fetch and what it is. */
export interface Descriptor {
  digest: string;
  mediaType?: string;
  size?: number;
}

/** What a verified manifest or index says (parsed once, kept in memory). */
export type ParsedManifest =
  | { kind: 'index'; child: Descriptor }
  | { kind: 'manifest'; config: Descriptor; layers: Descriptor[] }
  | { kind: 'error'; error: string };

/** A blob's verification history: how often it was fetched again, and the final error. */
export interface BlobMemory {
  retry: number;
  finalError?: ErrorInfo;
}

export interface LoadedImage {
  imageRef: string;
  imageId: string;
}

/** A volume instance that exists (directory on disk or a hold on an image). */
export interface CreatedVolume {
  kind: 'image' | 'directory';
  createdAt: string;
  contentTreeId?: string;
  contentDigest?: string;
  imageRef?: string;
  imageId?: string;
  hostPath?: string;
}

/** What volumemgr remembers between passes; rebuilt from inputs after a restart. */
export interface Memory {
  manifests: Map<string, ParsedManifest>;
  blobs: Map<string, BlobMemory>;
  /** Loaded images by content tree id, for the tree's current digest. */
  loaded: Map<string, LoadedImage & { digest: string }>;
  /** Failures of steps (load, volume creation) by object key, retried after the next GC tick. */
  stepErrors: Map<string, ErrorInfo>;
  volumes: Map<string, CreatedVolume>;
  /** Image refs whose removal Docker refused (in use); retried after the next GC tick. */
  removeBlocked: Set<string>;
}

export function emptyMemory(): Memory {
  return { manifests: new Map(), blobs: new Map(), loaded: new Map(), stepErrors: new Map(), volumes: new Map(), removeBlocked: new Set() };
}

/** Facts the drivers gathered before the pass. */
export interface Facts {
  now: string;
  instance: string;
  /** Docker images carrying this instance's tag prefix: repo:tag → image id. */
  images: ReadonlyMap<string, string>;
  /** Volume directories on disk, by volume instance key. */
  volumeDirs: ReadonlySet<string>;
  volumesDir: string;
  /** Free bytes on the persist filesystem. */
  freeBytes: number;
}

export interface PlanInput {
  contentTrees: RMap<ContentTree>;
  datastores: RMap<Datastore>;
  volumes: RMap<Volume>;
  volumeRefs: RMap<VolumeRefConfig>;
  items: Readonly<Record<string, string>> | undefined;
  resolveStatus: RMap<ResolveStatus>;
  downloaderStatus: RMap<DownloaderStatus>;
  verifyStatus: RMap<VerifyImageStatus>;
  /** What volumemgr publishes now (the handshakes and error times depend on it). */
  published: {
    downloader: RMap<DownloaderConfig>;
    verify: RMap<VerifyImageConfig>;
    resolvedTags: RMap<ResolvedTag>;
    contentTrees: RMap<ContentTreeStatus>;
    volumes: RMap<VolumeStatus>;
  };
  memory: Memory;
  facts: Facts;
}

export type Step =
  | { kind: 'readManifest'; digest: string; path: string }
  | { kind: 'blobFailed'; digest: string; error: ErrorInfo; final: boolean }
  | { kind: 'loadImage'; contentTreeId: string; digest: string; imageRef: string; configDigest: string; configPath: string; layerPaths: string[] }
  | { kind: 'createVolume'; key: string; volume: CreatedVolume; copyFrom?: string; fileName?: string; maxSizeBytes?: number }
  | { kind: 'deleteVolume'; key: string; hostPath?: string }
  | { kind: 'removeImage'; imageRef: string };

export interface Plan {
  resolve: Map<string, ResolveConfig>;
  resolvedTags: Map<string, ResolvedTag>;
  downloader: Map<string, DownloaderConfig>;
  verify: Map<string, VerifyImageConfig>;
  contentTrees: Map<string, ContentTreeStatus>;
  volumes: Map<string, VolumeStatus>;
  volumeRefs: Map<string, VolumeRefStatus>;
  steps: Step[];
}
