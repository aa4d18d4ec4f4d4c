// Pure reading of registry references and manifests: which repository a content
// tree names, what a verified manifest or index lists, and the Docker tag zedbox
// gives a loaded image.
import type { Descriptor, ParsedManifest } from './types';

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export interface RegistryRef {
  repository: string;
  tag?: string;
  digest?: string;
}

/** "repo[:tag]" or "repo@sha256:…" (a registry host inside the url is not expected: the datastore names it). */
export function parseRegistryUrl(url: string): RegistryRef | { error: string } {
  const at = url.indexOf('@');
  if (at >= 0) {
    const digest = url.slice(at + 1);
    if (!DIGEST_RE.test(digest)) return { error: `url ${url}: "${digest}" is not a sha256 digest` };
    return { repository: url.slice(0, at), digest };
  }
  const slash = url.lastIndexOf('/');
  const colon = url.lastIndexOf(':');
  if (colon > slash) return { repository: url.slice(0, colon), tag: url.slice(colon + 1) || 'latest' };
  return { repository: url, tag: 'latest' };
}

function descriptor(v: unknown, where: string): Descriptor {
  const d = v as { digest?: unknown; mediaType?: unknown; size?: unknown } | null;
  if (!d || typeof d.digest !== 'string' || !DIGEST_RE.test(d.digest)) throw new Error(`${where}: missing or bad digest`);
  return {
    digest: d.digest,
    ...(typeof d.mediaType === 'string' ? { mediaType: d.mediaType } : {}),
    ...(typeof d.size === 'number' && Number.isInteger(d.size) && d.size >= 0 ? { size: d.size } : {}),
  };
}

/** An OCI/Docker index picks linux/amd64; an image manifest yields its config and layers. */
export function parseManifest(text: string, digest: string): ParsedManifest {
  try {
    const doc = JSON.parse(text) as { manifests?: unknown; config?: unknown; layers?: unknown; schemaVersion?: unknown };
    if (Array.isArray(doc.manifests)) {
      const pick = doc.manifests.find((m: { platform?: { os?: string; architecture?: string } }) =>
        m?.platform?.os === 'linux' && m.platform.architecture === 'amd64');
      if (!pick) return { kind: 'error', error: `index ${digest} has no linux/amd64 manifest` };
      return { kind: 'index', child: descriptor(pick, `index ${digest}: linux/amd64 entry`) };
    }
    if (doc.config !== undefined && Array.isArray(doc.layers)) {
      return {
        kind: 'manifest',
        config: descriptor(doc.config, `manifest ${digest}: config`),
        layers: doc.layers.map((l, i) => descriptor(l, `manifest ${digest}: layers[${i}]`)),
      };
    }
    return { kind: 'error', error: `manifest ${digest} is neither an image manifest nor an index (schemaVersion ${String(doc.schemaVersion)})` };
  } catch (err) {
    return { kind: 'error', error: `manifest ${digest} cannot be read: ${(err as Error).message}` };
  }
}

/** Docker repository names allow lowercase letters, digits and single separators. */
function repoComponent(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
}

/** The prefix of every tag this zedbox instance owns in Docker. */
export function imageRepoPrefix(instance: string): string {
  return `zedbox-${repoComponent(instance)}/`;
}

/** zedbox-<instance>/<name>:<first 12 hex of the image manifest digest>. */
export function imageRefFor(instance: string, treeName: string | undefined, treeId: string, manifestDigest: string): string {
  const name = repoComponent(treeName ?? '') || `ct-${treeId.slice(0, 8).toLowerCase()}`;
  return `${imageRepoPrefix(instance)}${name}:${manifestDigest.slice('sha256:'.length, 'sha256:'.length + 12)}`;
}
