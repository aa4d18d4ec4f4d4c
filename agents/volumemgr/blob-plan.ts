// Blob reference counts, pure: which DownloaderConfig and VerifyImageConfig to
// publish, with how many content trees need each, and the explicit deletion
// handshakes (publish refCount 0, wait for the status to go, then unpublish).
import type { DownloaderConfig, VerifyImageConfig } from '../../pubsub/collections/content';
import { blobView, type BlobNeed, type ContentPlan } from './content-plan';
import type { PlanInput } from './types';

interface Need {
  blob: BlobNeed;
  trees: Set<string>;
  /** Trees that still need it fetched (not LOADED yet). */
  unloaded: Set<string>;
}

function collectNeeds(plan: ContentPlan): Map<string, Need> {
  const needs = new Map<string, Need>();
  for (const [id, t] of plan.trees) {
    for (const b of t.blobs) {
      let n = needs.get(b.digest);
      if (!n) needs.set(b.digest, (n = { blob: b, trees: new Set(), unloaded: new Set() }));
      if (b.signature && !n.blob.signature) n.blob = b;
      n.trees.add(id);
      if (t.status.state !== 'LOADED') n.unloaded.add(id);
    }
  }
  return needs;
}

function downloaderConfigs(input: PlanInput, needs: Map<string, Need>): Map<string, DownloaderConfig> {
  const out = new Map<string, DownloaderConfig>();
  for (const [d, n] of needs) {
    const mem = input.memory.blobs.get(d);
    const view = blobView(input, d);
    if (mem?.finalError || view.state === 'VERIFIED' || n.unloaded.size === 0) continue;
    out.set(d, {
      digest: d, kind: n.blob.kind, datastoreIds: n.blob.datastoreIds, name: n.blob.name,
      ...(n.blob.size !== undefined ? { sizeBytes: n.blob.size } : {}),
      ...(n.blob.mediaType ? { mediaType: n.blob.mediaType } : {}),
      refCount: n.unloaded.size, retry: mem?.retry ?? 0,
    });
  }
  // No longer wanted: ask the downloader to delete (refCount 0), unpublish once its status is gone.
  for (const [d, cur] of input.published.downloader) {
    if (out.has(d)) continue;
    if (cur.refCount > 0 || input.downloaderStatus.has(d)) out.set(d, { ...cur, refCount: 0 });
  }
  return out;
}

function verifyConfigs(input: PlanInput, needs: Map<string, Need>, failedNow: ReadonlySet<string>, settled: boolean): Map<string, VerifyImageConfig> {
  const out = new Map<string, VerifyImageConfig>();
  for (const [d, n] of needs) {
    const mem = input.memory.blobs.get(d);
    if (mem?.finalError || failedNow.has(d)) continue;
    const vis = input.verifyStatus.get(d);
    const ds = input.downloaderStatus.get(d);
    const cur = input.published.verify.get(d);
    const downloaded = ds?.state === 'DOWNLOADED' && ds.retry === (mem?.retry ?? 0);
    // Ask only once there is something to verify: a verified file, or a finished download of this attempt.
    if (!(vis?.state === 'VERIFIED' || (cur && cur.refCount > 0) || downloaded)) continue;
    out.set(d, {
      digest: d,
      ...(n.blob.size !== undefined ? { sizeBytes: n.blob.size } : {}),
      ...(n.blob.mediaType ? { mediaType: n.blob.mediaType } : {}),
      ...(downloaded && ds?.path ? { pendingPath: ds.path } : cur?.pendingPath ? { pendingPath: cur.pendingPath } : {}),
      ...(n.blob.signature ? { signature: n.blob.signature } : {}),
      refCount: n.trees.size,
    });
  }
  if (!settled) {
    // Some tree does not yet know all its blobs: delete nothing, keep what is published.
    for (const [d, cur] of input.published.verify) if (!out.has(d) && !failedNow.has(d)) out.set(d, { ...cur });
    return out;
  }
  // Not needed: delete explicitly (also what the verifier found at start and nobody wants).
  for (const [d, vis] of input.verifyStatus) {
    if (out.has(d) || needs.has(d) || vis.state === 'VERIFYING') continue;
    const cur = input.published.verify.get(d);
    out.set(d, { ...(cur ?? { digest: d }), refCount: 0 });
  }
  for (const [d, cur] of input.published.verify) {
    if (out.has(d) || failedNow.has(d) || input.memory.blobs.get(d)?.finalError) continue;
    // Still needed but not ready to verify (a fresh fetch after a failure): keep nothing published.
    if (needs.has(d)) continue;
    if (cur.refCount > 0) out.set(d, { ...cur, refCount: 0 });
  }
  return out;
}

export function planBlobConfigs(input: PlanInput, plan: ContentPlan, failedNow: ReadonlySet<string>): {
  downloader: Map<string, DownloaderConfig>;
  verify: Map<string, VerifyImageConfig>;
  treeRefs: Map<string, number>;
} {
  const needs = collectNeeds(plan);
  return {
    downloader: downloaderConfigs(input, needs),
    verify: verifyConfigs(input, needs, failedNow, [...plan.trees.values()].every((t) => t.settled)),
    treeRefs: new Map([...needs].map(([d, n]) => [d, n.trees.size])),
  };
}
