// Where a download or a tag resolution is fetched from, pure: the URL, the
// headers and the registry scope for a config and one datastore.
import type { Datastore } from '../../pubsub/collections/config';
import type { DownloaderConfig } from '../../pubsub/collections/content';

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface Source {
  url: string;
  headers: Record<string, string>;
  scope?: string;
}

const base = (ds: Datastore): string => ds.url.replace(/\/+$/, '');

export function sourceFor(config: Pick<DownloaderConfig, 'kind' | 'name' | 'digest'>, ds: Datastore): Source {
  if (config.kind === 'http') {
    const rel = config.name.replace(/^\/+/, '').split('/').map(encodeURIComponent).join('/');
    return { url: `${base(ds)}/${rel}`, headers: {} };
  }
  const scope = `repository:${config.name}:pull`;
  if (config.kind === 'oci-manifest') {
    return { url: `${base(ds)}/v2/${config.name}/manifests/${config.digest}`, headers: { Accept: MANIFEST_ACCEPT }, scope };
  }
  return { url: `${base(ds)}/v2/${config.name}/blobs/${config.digest}`, headers: {}, scope };
}

export interface ParsedReference {
  repository: string;
  /** A tag, or a digest when the reference pins one (repo@sha256:…). */
  tag?: string;
  digest?: string;
}

/** "repo[:tag]" or "repo@sha256:…"; the tag defaults to latest. Throws naming the reference when it is bad. */
export function parseReference(reference: string): ParsedReference {
  const at = reference.indexOf('@');
  if (at >= 0) {
    const digest = reference.slice(at + 1);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`reference "${reference}": bad digest "${digest}"`);
    return { repository: reference.slice(0, at), digest };
  }
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  const hasTag = colon > slash;
  const repository = hasTag ? reference.slice(0, colon) : reference;
  const tag = hasTag ? reference.slice(colon + 1) : 'latest';
  if (!/^[a-z0-9]+([._/-][a-z0-9]+)*$/.test(repository)) throw new Error(`reference "${reference}": bad repository name "${repository}"`);
  if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw new Error(`reference "${reference}": bad tag "${tag}"`);
  return { repository, tag };
}

export function resolveSource(ref: ParsedReference, ds: Datastore): Source {
  return {
    url: `${base(ds)}/v2/${ref.repository}/manifests/${ref.tag ?? ref.digest}`,
    headers: { Accept: MANIFEST_ACCEPT },
    scope: `repository:${ref.repository}:pull`,
  };
}
