// Content trees, pure: tag → digest (latched), root manifest → child blobs,
// each blob through downloader and verifier, then the load into Docker. Returns
// each tree's status, the blobs it needs, and the steps to take.
import { configItem } from '../../pubsub/collections/config-items';
import { minState, type ErrorInfo, type SwState } from '../../pubsub/collections/common';
import type { ContentTree, Datastore } from '../../pubsub/collections/config';
import { resolveKey } from '../../pubsub/collections/content';
import type { ContentTreeStatus } from '../../pubsub/collections/volumes';
import { errorInfo, withEntities } from './errors';
import { imageRefFor, parseRegistryUrl } from './manifest';
import type { Descriptor, PlanInput, ResolveConfig, ResolvedTag, Step } from './types';

const SOURCE = 'ContentTreeStatus';

/** One blob as one content tree needs it. */
export interface BlobNeed extends Descriptor {
  kind: 'http' | 'oci-manifest' | 'oci-blob';
  name: string;
  datastoreIds: string[];
  /** Only the root blob carries the content tree's signature. */
  signature?: ContentTree['signature'];
}

export interface BlobView {
  state: SwState;
  currentBytes: number;
  totalBytes?: number;
  path?: string;
  error?: ErrorInfo;
}

export interface TreeResult {
  status: ContentTreeStatus;
  blobs: BlobNeed[];
  /** The Docker tag the tree's image has or will have (known once the image manifest is read). */
  imageRef?: string;
  /**
   * Every blob it needs is known (or it failed for good). Until all trees are settled
   * nothing is garbage-collected: a blob or image not yet named may still be wanted.
   */
  settled: boolean;
}

export interface ContentPlan {
  trees: Map<string, TreeResult>;
  resolve: Map<string, ResolveConfig>;
  resolvedTags: Map<string, ResolvedTag>;
  steps: Step[];
}

/** Where a blob stands, from what the downloader and verifier publish and what failed before. */
export function blobView(input: PlanInput, d: string): BlobView {
  const mem = input.memory.blobs.get(d);
  const retry = mem?.retry ?? 0;
  const vis = input.verifyStatus.get(d);
  const ds = input.downloaderStatus.get(d);
  const vic = input.published.verify.get(d);
  if (mem?.finalError) return { state: 'INITIAL', currentBytes: 0, error: mem.finalError };
  if (vis?.state === 'VERIFIED' && vis.path) {
    return { state: 'VERIFIED', currentBytes: vis.sizeBytes ?? 0, totalBytes: vis.sizeBytes, path: vis.path };
  }
  if (vic && vic.refCount > 0 && vis?.error) return { state: 'VERIFYING', currentBytes: 0, error: vis.error };
  if (vic && vic.refCount > 0 && vis) return { state: 'VERIFYING', currentBytes: ds?.currentBytes ?? 0, totalBytes: ds?.totalBytes };
  if (ds && ds.retry === retry) {
    const state: SwState = ds.state === 'DOWNLOADED' ? 'DOWNLOADED' : 'DOWNLOADING';
    return { state, currentBytes: ds.currentBytes, totalBytes: ds.totalBytes, path: ds.path, error: ds.error };
  }
  return { state: 'DOWNLOADING', currentBytes: 0 };
}

function firstDatastore(input: PlanInput, tree: ContentTree): Datastore | undefined {
  for (const id of tree.datastoreIds) {
    const ds = input.datastores.get(id);
    if (ds) return ds;
  }
  return undefined;
}

interface TreeCtx {
  input: PlanInput;
  out: ContentPlan;
  tree: ContentTree;
  generation: number;
  prev?: ContentTreeStatus;
}

function baseStatus(c: TreeCtx): ContentTreeStatus {
  return {
    contentTreeId: c.tree.id,
    generation: c.generation,
    ...(c.tree.name !== undefined ? { name: c.tree.name } : {}),
    format: c.tree.format,
    state: 'INITIAL',
    blobs: [],
    refCount: 0,
  };
}

function failed(c: TreeCtx, message: string, state: SwState = 'INITIAL', retryCondition?: string): TreeResult {
  const error = errorInfo(message, c.input.facts.now, {
    prev: c.prev?.error, source: SOURCE, entities: [{ type: 'contentTree', id: c.tree.id }],
    retryCondition: retryCondition ?? 'fix the config', severity: retryCondition ? 'warning' : 'error',
  });
  return { status: { ...baseStatus(c), state, error }, blobs: [], settled: true };
}

/** The top digest of a registry tree: from the config, the url, the latch, or a resolve in progress. */
function topDigest(c: TreeCtx, repoTag: string, urlDigest: string | undefined): string | TreeResult {
  const { input, out, tree } = c;
  const fixed = tree.sha256 ?? urlDigest;
  if (fixed) return fixed;
  const key = resolveKey(tree.id, c.generation);
  const latched = input.published.resolvedTags.get(key);
  // The latch holds for the reference it was made for: a config naming another repo:tag resolves anew.
  if (latched && latched.reference === repoTag) {
    out.resolvedTags.set(key, { ...latched });
    return latched.digest;
  }
  const rs = input.resolveStatus.get(key);
  if (rs?.digest && rs.reference === repoTag) {
    out.resolvedTags.set(key, { contentTreeId: tree.id, generation: c.generation, reference: repoTag, digest: rs.digest, resolvedAt: input.facts.now });
    return rs.digest;
  }
  out.resolve.set(key, { contentTreeId: tree.id, generation: c.generation, datastoreIds: [...tree.datastoreIds], reference: repoTag });
  const status: ContentTreeStatus = { ...baseStatus(c), state: 'RESOLVING_TAG' };
  if (rs?.error) status.error = withEntities(rs.error, [{ type: 'contentTree', id: tree.id }], SOURCE);
  return { status, blobs: [], settled: false };
}

/** Root manifest, optional index child, then config and layers as far as they are known. */
function registryBlobs(c: TreeCtx, repository: string, root: string): { blobs: BlobNeed[]; complete: boolean; manifestDigest?: string; config?: string; error?: string } {
  const { input, tree, out } = c;
  const ids = [...tree.datastoreIds];
  const blobs: BlobNeed[] = [{ digest: root, kind: 'oci-manifest', name: repository, datastoreIds: ids, ...(tree.signature ? { signature: tree.signature } : {}) }];
  let current = root;
  for (let depth = 0; depth < 2; depth++) {
    const parsed = input.memory.manifests.get(current);
    if (!parsed) {
      const view = blobView(input, current);
      if (view.state === 'VERIFIED' && view.path) out.steps.push({ kind: 'readManifest', digest: current, path: view.path });
      return { blobs, complete: false };
    }
    if (parsed.kind === 'error') return { blobs, complete: false, error: parsed.error };
    if (parsed.kind === 'index') {
      if (depth > 0) return { blobs, complete: false, error: `index ${current} names another index` };
      blobs.push({ ...parsed.child, kind: 'oci-manifest', name: repository, datastoreIds: ids });
      current = parsed.child.digest;
      continue;
    }
    blobs.push({ ...parsed.config, kind: 'oci-blob', name: repository, datastoreIds: ids });
    for (const l of parsed.layers) blobs.push({ ...l, kind: 'oci-blob', name: repository, datastoreIds: ids });
    return { blobs, complete: true, manifestDigest: current, config: parsed.config.digest };
  }
  return { blobs, complete: false };
}

/** Blob states into the tree: least advanced state, summed progress, the first blob error. */
function summarise(c: TreeCtx, status: ContentTreeStatus, blobs: BlobNeed[]): { views: BlobView[]; error?: ErrorInfo } {
  const views = blobs.map((b) => blobView(c.input, b.digest));
  let current = 0;
  let total = 0;
  let error: ErrorInfo | undefined;
  status.blobs = blobs.map((b, i) => {
    const v = views[i] as BlobView;
    const size = b.size ?? v.totalBytes;
    current += v.state === 'VERIFIED' ? (size ?? v.currentBytes) : v.currentBytes;
    total += size ?? 0;
    if (v.error && !error) {
      // Name the tree and the blob in the text too: the app's error is all a user reads.
      const named = v.error.error.includes(c.tree.id) ? v.error : { ...v.error, error: `content tree ${c.tree.id}, blob ${b.digest}: ${v.error.error}` };
      error = withEntities(named, [{ type: 'contentTree', id: c.tree.id }, { type: 'blob', id: b.digest }], SOURCE);
    }
    return {
      digest: b.digest, state: v.state, currentBytes: v.currentBytes,
      ...(b.mediaType ? { mediaType: b.mediaType } : {}), ...(size !== undefined ? { sizeBytes: size, totalBytes: size } : {}),
    };
  });
  status.state = minState(views.map((v) => v.state));
  status.currentBytes = current;
  status.totalBytes = total;
  return { views, error };
}

function planRegistryTree(c: TreeCtx): TreeResult {
  const ref = parseRegistryUrl(c.tree.url);
  if ('error' in ref) return failed(c, `content tree ${c.tree.id}: ${ref.error}`);
  const top = topDigest(c, `${ref.repository}:${ref.tag ?? 'latest'}`, ref.digest);
  if (typeof top !== 'string') return top;
  const status: ContentTreeStatus = { ...baseStatus(c), digest: top };
  const exp = registryBlobs(c, ref.repository, top);
  const { views, error } = summarise(c, status, exp.blobs);
  if (error) status.error = error;
  if (exp.error) {
    status.error = errorInfo(`content tree ${c.tree.id}: ${exp.error}`, c.input.facts.now, {
      prev: c.prev?.error, source: SOURCE, retryCondition: 'fix the content or the config', severity: 'error',
      entities: [{ type: 'contentTree', id: c.tree.id }, { type: 'blob', id: top }],
    });
    return { status, blobs: exp.blobs, settled: true };
  }
  if (!exp.complete || !exp.manifestDigest || !exp.config) {
    if (status.state === 'VERIFIED') status.state = 'DOWNLOADING'; // more blobs are yet to be named
    const gaveUp = exp.blobs.some((b) => c.input.memory.blobs.get(b.digest)?.finalError);
    return { status, blobs: exp.blobs, settled: gaveUp };
  }
  const imageRef = imageRefFor(c.input.facts.instance, c.tree.name, c.tree.id, exp.manifestDigest);
  if (status.state !== 'VERIFIED') return { status, blobs: exp.blobs, imageRef, settled: true };
  if (c.input.facts.images.get(imageRef) === exp.config) {
    Object.assign(status, { state: 'LOADED', imageRef, imageId: exp.config });
    return { status, blobs: exp.blobs, imageRef, settled: true };
  }
  const loadError = c.input.memory.stepErrors.get(`load:${c.tree.id}`);
  if (loadError) return { status: { ...status, error: loadError }, blobs: exp.blobs, imageRef, settled: true };
  status.state = 'LOADING';
  const paths = views.map((v) => v.path as string);
  const configAt = exp.blobs.findIndex((b) => b.digest === exp.config); // the layers follow the config
  c.out.steps.push({
    kind: 'loadImage', contentTreeId: c.tree.id, digest: top, imageRef, configDigest: exp.config,
    configPath: paths[configAt] as string, layerPaths: paths.slice(configAt + 1),
  });
  return { status, blobs: exp.blobs, imageRef, settled: true };
}

function planHttpTree(c: TreeCtx): TreeResult {
  const { tree } = c;
  if (!tree.sha256) return failed(c, `content tree ${tree.id} (${tree.url}): sha256 is required for content from an http datastore`);
  const blobs: BlobNeed[] = [{
    digest: tree.sha256, kind: 'http', name: tree.url, datastoreIds: [...tree.datastoreIds],
    ...(tree.sizeBytes !== undefined ? { size: tree.sizeBytes } : {}), ...(tree.signature ? { signature: tree.signature } : {}),
  }];
  const status: ContentTreeStatus = { ...baseStatus(c), digest: tree.sha256 };
  const { views, error } = summarise(c, status, blobs);
  if (error) status.error = error;
  if (status.state === 'VERIFIED') Object.assign(status, { state: 'LOADED', path: views[0]?.path });
  return { status, blobs, settled: true };
}

export function planContentTrees(input: PlanInput, out: ContentPlan): void {
  for (const tree of input.contentTrees.values()) {
    const c: TreeCtx = { input, out, tree, generation: tree.generation ?? 0, prev: input.published.contentTrees.get(tree.id) };
    const ds = firstDatastore(input, tree);
    let result: TreeResult;
    if (!ds) result = failed(c, `content tree ${tree.id}: datastore ${tree.datastoreIds.join(', ')} not found`, 'INITIAL', 'waits for the datastore config');
    else if (tree.format === 'container' && ds.type !== 'registry') result = failed(c, `content tree ${tree.id}: container content needs a registry datastore, ${ds.id} is ${ds.type}`);
    else if (tree.format === 'raw' && ds.type === 'registry') result = failed(c, `content tree ${tree.id}: raw content needs an http(s) datastore, ${ds.id} is a registry`);
    else result = tree.format === 'container' ? planRegistryTree(c) : planHttpTree(c);
    out.trees.set(tree.id, result);
  }
}

/** Verification failures: fetch again (bump the downloader's retry) up to blob.download.max.retries. */
export function planBlobFailures(input: PlanInput, out: ContentPlan): Set<string> {
  const max = configItem(input.items, 'blob.download.max.retries');
  const failedNow = new Set<string>();
  for (const t of out.trees.values()) {
    for (const b of t.blobs) {
      const vis = input.verifyStatus.get(b.digest);
      const vic = input.published.verify.get(b.digest);
      const mem = input.memory.blobs.get(b.digest);
      if (failedNow.has(b.digest) || mem?.finalError || !vic || vic.refCount === 0 || !vis?.error) continue;
      failedNow.add(b.digest);
      const retry = mem?.retry ?? 0;
      const final = retry >= max;
      const error = errorInfo(
        final ? `blob ${b.digest} of content tree ${t.status.contentTreeId} failed verification ${retry + 1} times: ${vis.error.error}` : vis.error.error,
        input.facts.now,
        { source: SOURCE, entities: [{ type: 'contentTree', id: t.status.contentTreeId }, { type: 'blob', id: b.digest }],
          retryCondition: final ? 'fix the content tree sha256 or url' : `fetching again (${retry + 1} of ${max})`,
          severity: final ? 'error' : 'notice' },
      );
      out.steps.push({ kind: 'blobFailed', digest: b.digest, error, final });
    }
  }
  return failedNow;
}
