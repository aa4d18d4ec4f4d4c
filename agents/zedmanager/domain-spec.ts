// What container an app needs, from its config and the volumes volumemgr made:
// the DomainConfig zedmanager asks domainmgr for, and the hash that tells
// domainmgr when the container must be made anew. Pure.
import { createHash } from 'node:crypto';
import { stateOrder } from '../../pubsub/collections/common';
import type { AppInstanceConfig } from '../../pubsub/collections/config';
import type { DomainConfig } from '../../pubsub/collections/apps';
import type { VolumeRefStatus } from '../../pubsub/collections/volumes';

/** One volume instance an app uses (the key parts of a VolumeRefConfig). */
export interface RefInstance {
  volumeId: string;
  generation: number;
  localGeneration: number;
  mountDir?: string;
}

export type SpecResult = { ok: true; domain: Omit<DomainConfig, 'activate'> } | { ok: false; reason: string };

const CREATED = stateOrder('CREATED_VOLUME');

/**
 * The container for `refs` (the first is the root disk: an image), or why it cannot
 * be built yet. `statusOf` finds the VolumeRefStatus of a ref.
 */
export function domainSpec(
  config: AppInstanceConfig,
  refs: readonly RefInstance[],
  statusOf: (r: RefInstance) => VolumeRefStatus | undefined,
): SpecResult {
  const statuses: VolumeRefStatus[] = [];
  for (const r of refs) {
    const s = statusOf(r);
    if (!s || stateOrder(s.state) < CREATED) return { ok: false, reason: `volume ${r.volumeId} is not created yet` };
    statuses.push(s);
  }
  const [root, ...others] = statuses;
  if (!root) return { ok: false, reason: 'the app has no volume refs' };
  if (root.kind !== 'image' || !root.imageRef) {
    return { ok: false, reason: `the first volume ref (${root.volumeId}) is the root disk and must be a container image; volumemgr reports ${root.kind ?? 'no kind'}` };
  }
  const mounts: DomainConfig['mounts'] = [];
  for (const [i, s] of others.entries()) {
    const containerPath = refs[i + 1]?.mountDir ?? s.mountDir;
    if (!s.hostPath || !containerPath) return { ok: false, reason: `volume ${s.volumeId} has no ${s.hostPath ? 'mountDir' : 'host path'}` };
    mounts.push({ hostPath: s.hostPath, containerPath, readonly: s.readonly });
  }
  const spec = {
    appId: config.id,
    name: config.name,
    imageRef: root.imageRef,
    ...(config.entrypoint ? { entrypoint: [...config.entrypoint] } : {}),
    ...(config.command ? { command: [...config.command] } : {}),
    env: { ...(config.env ?? {}) },
    ports: (config.ports ?? []).map((p) => ({ ...p })),
    memoryMiB: config.resources.memoryMiB,
    cpus: config.resources.cpus,
    mounts,
    networkInstanceIds: [...(config.networkInstanceIds ?? [])],
  };
  // The image id as well as its name: a re-loaded tag with new content is a new container.
  const specHash = hashOf({ ...spec, imageId: root.imageId ?? '' });
  return { ok: true, domain: { ...spec, specHash } };
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted, so equal specs hash equally whatever their key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
