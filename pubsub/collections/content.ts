// The content pipeline between volumemgr, downloader and verifier (EVE's
// ResolveConfig/Status, DownloaderConfig/Status, VerifyImageConfig/Status).
// volumemgr asks; downloader and verifier answer, keyed by digest.
//
// Deleting content is always explicit: a config with refCount 0 asks for the file
// to go. A config that merely vanished (say volumemgr restarted and has not
// republished yet) removes the status but never the file.
import { Type, type Static } from '@sinclair/typebox';
import { defineCollection } from '../catalog';
import { Counter, Digest, ErrorInfoSchema, SwStateSchema, Time, Uuid } from './common';
import { SignatureSchema } from './config';

const strict = { additionalProperties: false } as const;

/** Resolve a registry tag to the digest of its manifest (or index), once per content tree generation. */
export const ResolveConfigSchema = Type.Object(
  {
    contentTreeId: Uuid,
    generation: Counter,
    datastoreIds: Type.Array(Uuid, { minItems: 1 }),
    /** repository:tag */
    reference: Type.String({ minLength: 1 }),
  },
  strict,
);
export const resolveKey = (contentTreeId: string, generation: number): string => `${contentTreeId}#${generation}`;
export const ResolveConfigCollection = defineCollection({
  type: 'ResolveConfig', owner: 'volumemgr', schema: ResolveConfigSchema, keyOf: (v) => resolveKey(v.contentTreeId, v.generation),
  description: 'A registry tag to resolve to a digest, keyed by contentTreeId#generation',
});

export const ResolveStatusSchema = Type.Object(
  {
    contentTreeId: Uuid,
    generation: Counter,
    reference: Type.String(),
    digest: Type.Optional(Digest),
    mediaType: Type.Optional(Type.String()),
    retryCount: Counter,
    error: Type.Optional(ErrorInfoSchema),
  },
  strict,
);
export type ResolveStatus = Static<typeof ResolveStatusSchema>;
export const ResolveStatusCollection = defineCollection({
  type: 'ResolveStatus', owner: 'downloader', schema: ResolveStatusSchema, keyOf: (v) => resolveKey(v.contentTreeId, v.generation),
  description: 'The digest a registry tag resolved to, keyed by contentTreeId#generation',
});

export const DownloadKind = Type.Union([
  /** A file at <datastore url>/<name> over HTTP(S). */
  Type.Literal('http'),
  /** A registry manifest or index: GET /v2/<name>/manifests/<digest>. */
  Type.Literal('oci-manifest'),
  /** A registry blob (config or layer): GET /v2/<name>/blobs/<digest>. */
  Type.Literal('oci-blob'),
]);

export const DownloaderConfigSchema = Type.Object(
  {
    digest: Digest,
    kind: DownloadKind,
    /** Tried in order until one works. */
    datastoreIds: Type.Array(Uuid, { minItems: 1 }),
    /** http: the path under the datastore url; oci-*: the repository name. */
    name: Type.String({ minLength: 1 }),
    /** Expected size when known (a manifest names its blobs' sizes); checked and used for the space check. */
    sizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    mediaType: Type.Optional(Type.String()),
    /** How many content trees need it; 0 asks the downloader to delete the file. */
    refCount: Counter,
    /** volumemgr bumps it to fetch again (after a blob failed verification). */
    retry: Counter,
  },
  strict,
);
export type DownloaderConfig = Static<typeof DownloaderConfigSchema>;
export const DownloaderConfigCollection = defineCollection({
  type: 'DownloaderConfig', owner: 'volumemgr', schema: DownloaderConfigSchema, keyOf: (v) => v.digest,
  description: 'A blob to download into the pending store, keyed by digest',
});

export const DownloaderStatusSchema = Type.Object(
  {
    digest: Digest,
    state: SwStateSchema, // INITIAL (queued or failed), DOWNLOADING, DOWNLOADED
    refCount: Counter,
    /** The config's retry value this status answers. */
    retry: Counter,
    currentBytes: Type.Integer({ minimum: 0 }),
    totalBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    /** The downloaded file, once DOWNLOADED (under <persist>/vault/downloader/pending). */
    path: Type.Optional(Type.String()),
    /** As the server named it (for manifests: which manifest or index type). */
    mediaType: Type.Optional(Type.String()),
    /** Which datastore served it. */
    datastoreId: Type.Optional(Uuid),
    retryCount: Counter,
    /** The first error of the current failure run (EVE OrigError). */
    firstError: Type.Optional(Type.String()),
    error: Type.Optional(ErrorInfoSchema),
    startedAt: Type.Optional(Time),
    downloadedAt: Type.Optional(Time),
  },
  strict,
);
export type DownloaderStatus = Static<typeof DownloaderStatusSchema>;
export const DownloaderStatusCollection = defineCollection({
  type: 'DownloaderStatus', owner: 'downloader', schema: DownloaderStatusSchema, keyOf: (v) => v.digest,
  description: 'Progress and result of one download, keyed by digest',
});

export const VerifyImageConfigSchema = Type.Object(
  {
    digest: Digest,
    sizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    mediaType: Type.Optional(Type.String()),
    /** Where the downloader left it. */
    pendingPath: Type.Optional(Type.String()),
    /** Required when set: an ed25519 signature over the digest by a key in PublisherKeys. */
    signature: Type.Optional(SignatureSchema),
    /** 0 asks the verifier to delete the verified file. */
    refCount: Counter,
  },
  strict,
);
export type VerifyImageConfig = Static<typeof VerifyImageConfigSchema>;
export const VerifyImageConfigCollection = defineCollection({
  type: 'VerifyImageConfig', owner: 'volumemgr', schema: VerifyImageConfigSchema, keyOf: (v) => v.digest,
  description: 'A downloaded blob to verify and keep, keyed by digest',
});

export const VerifyImageStatusSchema = Type.Object(
  {
    digest: Digest,
    state: SwStateSchema, // VERIFYING, VERIFIED, or INITIAL with an error
    refCount: Counter,
    /** The verified, read-only file (under <persist>/vault/verifier/verified). */
    path: Type.Optional(Type.String()),
    sizeBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    mediaType: Type.Optional(Type.String()),
    /** Which publisher key's signature was checked, when one was. */
    signedBy: Type.Optional(Type.String()),
    error: Type.Optional(ErrorInfoSchema),
    verifiedAt: Type.Optional(Time),
  },
  strict,
);
export type VerifyImageStatus = Static<typeof VerifyImageStatusSchema>;
export const VerifyImageStatusCollection = defineCollection({
  type: 'VerifyImageStatus', owner: 'verifier', schema: VerifyImageStatusSchema, keyOf: (v) => v.digest,
  description: 'A blob checked against its digest (and signature), keyed by digest',
});

export const CONTENT_COLLECTIONS = [
  ResolveConfigCollection, ResolveStatusCollection, DownloaderConfigCollection, DownloaderStatusCollection,
  VerifyImageConfigCollection, VerifyImageStatusCollection,
] as const;
