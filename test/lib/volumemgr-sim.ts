// A pure simulation around volumemgr's planner for the unit tests: the world
// (configs, what downloader and verifier publish, Docker's images, volume
// directories) reacts to each plan the way the real agents are specified to,
// and steps are applied the way the agent's executor applies them.
import { createHash } from 'node:crypto';
import { parseManifest } from '../../agents/volumemgr/manifest';
import { plan } from '../../agents/volumemgr/plan';
import { emptyMemory, type Memory, type Plan, type PlanInput, type Step } from '../../agents/volumemgr/types';
import type { ContentTree, Datastore, Volume } from '../../pubsub/collections/config';
import { volumeKey } from '../../pubsub/collections/config';
import type { DownloaderStatus, ResolveStatus, VerifyImageStatus } from '../../pubsub/collections/content';
import { volumeRefKey, type VolumeRefConfig } from '../../pubsub/collections/volumes';

export const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
export const REG = 'aaaaaaaa-0000-0000-0000-000000000001';
export const WEB = 'aaaaaaaa-0000-0000-0000-000000000002';
export const INSTANCE = 'abcdef012345';

export interface World {
  trees: Map<string, ContentTree>;
  datastores: Map<string, Datastore>;
  volumes: Map<string, Volume>;
  refs: Map<string, VolumeRefConfig>;
  items: Record<string, string>;
  /** What the registry answers for tag → digest. */
  tags: Map<string, string>;
  /** Blob contents by digest (manifests are read by the executor). */
  blobs: Map<string, string>;
  /** Digests whose downloads always come out wrong. */
  corrupt: Set<string>;
  rs: Map<string, ResolveStatus>;
  ds: Map<string, DownloaderStatus>;
  vis: Map<string, VerifyImageStatus>;
  images: Map<string, string>;
  volumeDirs: Set<string>;
  freeBytes: number;
  memory: Memory;
  last?: Plan;
  /** Every step taken, and every download and verified-file deletion, in order. */
  log: string[];
  /** Docker refuses to remove these (a container uses them). */
  inUse: Set<string>;
}

export function world(): World {
  return {
    trees: new Map(), datastores: new Map([
      [REG, { id: REG, type: 'registry', url: 'http://127.0.0.1:5000' }],
      [WEB, { id: WEB, type: 'http', url: 'http://127.0.0.1:8080/files' }],
    ]),
    volumes: new Map(), refs: new Map(), items: {}, tags: new Map(), blobs: new Map(), corrupt: new Set(),
    rs: new Map(), ds: new Map(), vis: new Map(), images: new Map(), volumeDirs: new Set(), freeBytes: 2 ** 40,
    memory: emptyMemory(), log: [], inUse: new Set(),
  };
}

/** An image: config + layers + manifest, registered as blobs; returns the digests. */
export function addImage(w: World, name: string, layers: string[], platformIndex = false): { manifest: string; config: string; layers: string[]; top: string } {
  const config = `{"config":"${name}"}`;
  w.blobs.set(sha(config), config);
  for (const l of layers) w.blobs.set(sha(l), l);
  const manifest = JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { digest: sha(config), size: config.length, mediaType: 'application/vnd.oci.image.config.v1+json' },
    layers: layers.map((l) => ({ digest: sha(l), size: l.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' })),
  });
  w.blobs.set(sha(manifest), manifest);
  let top = sha(manifest);
  if (platformIndex) {
    const index = JSON.stringify({ schemaVersion: 2, manifests: [
      { digest: sha('arm'), size: 3, platform: { os: 'linux', architecture: 'arm64' } },
      { digest: sha(manifest), size: manifest.length, mediaType: 'application/vnd.oci.image.manifest.v1+json', platform: { os: 'linux', architecture: 'amd64' } },
    ] });
    w.blobs.set(sha(index), index);
    top = sha(index);
  }
  return { manifest: sha(manifest), config: sha(config), layers: layers.map(sha), top };
}

export function addRef(w: World, r: VolumeRefConfig): void {
  w.refs.set(volumeRefKey(r), r);
}
export function addVolume(w: World, v: Volume): void {
  w.volumes.set(volumeKey(v.id, v.generation), v);
}

function input(w: World): PlanInput {
  const pub = w.last;
  return {
    contentTrees: w.trees, datastores: w.datastores, volumes: w.volumes, volumeRefs: w.refs, items: w.items,
    resolveStatus: w.rs, downloaderStatus: w.ds, verifyStatus: w.vis,
    published: {
      downloader: pub?.downloader ?? new Map(), verify: pub?.verify ?? new Map(), resolvedTags: pub?.resolvedTags ?? new Map(),
      contentTrees: pub?.contentTrees ?? new Map(), volumes: pub?.volumes ?? new Map(),
    },
    memory: w.memory,
    facts: { now: '2026-01-01T00:00:00Z', instance: INSTANCE, images: w.images, volumeDirs: w.volumeDirs, volumesDir: '/p/vault/volumes', freeBytes: w.freeBytes },
  };
}

function applyStep(w: World, s: Step): void {
  w.log.push(s.kind === 'readManifest' || s.kind === 'blobFailed' ? `${s.kind} ${s.digest}` : s.kind === 'loadImage' ? `loadImage ${s.imageRef}` : s.kind === 'removeImage' ? `removeImage ${s.imageRef}` : `${s.kind} ${s.key}`);
  switch (s.kind) {
    case 'readManifest': w.memory.manifests.set(s.digest, parseManifest(w.blobs.get(s.digest) ?? '', s.digest)); return;
    case 'blobFailed': {
      const m = w.memory.blobs.get(s.digest) ?? { retry: 0 };
      if (s.final) m.finalError = s.error; else m.retry++;
      w.memory.blobs.set(s.digest, m);
      return;
    }
    case 'loadImage': w.images.set(s.imageRef, s.configDigest); return;
    case 'createVolume': w.memory.volumes.set(s.key, s.volume); if (s.volume.hostPath) w.volumeDirs.add(s.key); return;
    case 'deleteVolume': w.memory.volumes.delete(s.key); w.volumeDirs.delete(s.key); return;
    case 'removeImage': if (w.inUse.has(s.imageRef)) w.memory.removeBlocked.add(s.imageRef); else w.images.delete(s.imageRef); return;
  }
}

/** The downloader and verifier answer the published configs, as content.ts specifies. */
function peersReact(w: World, p: Plan): void {
  for (const [k, rc] of p.resolve) {
    const digest = w.tags.get(rc.reference);
    if (digest) w.rs.set(k, { contentTreeId: rc.contentTreeId, generation: rc.generation, reference: rc.reference, digest, retryCount: 0 });
  }
  for (const k of [...w.rs.keys()]) if (!p.resolve.has(k)) w.rs.delete(k);
  for (const [d, dc] of p.downloader) {
    if (dc.refCount === 0) { w.ds.delete(d); continue; }
    const cur = w.ds.get(d);
    if (cur?.retry === dc.retry) continue;
    w.log.push(`download ${d} retry ${dc.retry}`);
    w.ds.set(d, { digest: d, state: 'DOWNLOADED', refCount: dc.refCount, retry: dc.retry, currentBytes: 1, path: `/p/pending/${d.slice(7)}`, retryCount: 0 });
  }
  for (const d of [...w.ds.keys()]) if (!p.downloader.has(d)) w.ds.delete(d);
  for (const [d, vic] of p.verify) {
    if (vic.refCount === 0) {
      if (w.vis.delete(d)) w.log.push(`deleteVerified ${d}`);
      continue;
    }
    const cur = w.vis.get(d);
    if (cur) {
      if (cur.state === 'VERIFIED') w.vis.set(d, { ...cur, refCount: vic.refCount });
      continue;
    }
    if (w.corrupt.has(d)) {
      w.vis.set(d, { digest: d, state: 'INITIAL', refCount: vic.refCount, error: { error: `sha256 mismatch for ${d}: got sha256:${'f'.repeat(64)}`, time: 'x', severity: 'error' } });
      continue;
    }
    w.vis.set(d, { digest: d, state: 'VERIFIED', refCount: vic.refCount, path: `/p/verified/${d.slice(7)}`, sizeBytes: (w.blobs.get(d) ?? '').length });
  }
  for (const d of [...w.vis.keys()]) if (!p.verify.has(d) && w.vis.get(d)?.refCount !== 0) w.vis.delete(d);
}

/** One round: plan, apply the steps, let the peers react. */
export function round(w: World): Plan {
  const p = plan(input(w));
  w.last = p;
  for (const s of p.steps) applyStep(w, s);
  peersReact(w, p);
  return p;
}

/** Plans, applies steps, lets the peers react; repeats until nothing changes. Returns the last plan. */
export function settle(w: World, maxRounds = 50): Plan {
  for (let i = 0; i < maxRounds; i++) {
    const p = plan(input(w));
    const before = JSON.stringify([[...w.ds], [...w.vis], [...w.rs]]);
    const published = JSON.stringify(pubSnapshot(p));
    const prevPublished = w.last ? JSON.stringify(pubSnapshot(w.last)) : '';
    w.last = p;
    for (const s of p.steps) applyStep(w, s);
    peersReact(w, p);
    if (p.steps.length === 0 && published === prevPublished && before === JSON.stringify([[...w.ds], [...w.vis], [...w.rs]])) return p;
  }
  throw new Error(`no fixed point after ${maxRounds} rounds; last steps: ${JSON.stringify(w.last?.steps)}`);
}

function pubSnapshot(p: Plan): unknown {
  return [p.resolve, p.resolvedTags, p.downloader, p.verify, p.contentTrees, p.volumes, p.volumeRefs].map((m) => [...m]);
}
