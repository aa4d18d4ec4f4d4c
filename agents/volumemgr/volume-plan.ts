// Volumes, pure: which volume instances exist, their reference counts (EVE
// §4.4), when to create them (a ref with verifyOnly false and its content
// LOADED), when to remove them (refCount 0), and what each app sees.
import * as path from 'node:path';
import { configItem } from '../../pubsub/collections/config-items';
import { stateOrder, type ErrorInfo, type SwState } from '../../pubsub/collections/common';
import { volumeKey, type Volume } from '../../pubsub/collections/config';
import { volumeInstanceKey, volumeRefKey, type ContentTreeStatus, type VolumeRefConfig, type VolumeRefStatus, type VolumeStatus } from '../../pubsub/collections/volumes';
import { errorInfo } from './errors';
import type { CreatedVolume, PlanInput, Step } from './types';

const SOURCE = 'VolumeStatus';
const MIB = 1024 * 1024;

interface Instance {
  key: string;
  volumeId: string;
  generation: number;
  localGeneration: number;
  refs: Readonly<VolumeRefConfig>[];
  config?: Readonly<Volume>;
  refCount: number;
}

/** Every instance named by a ref, created before, or found on disk; refCount per EVE. */
function instances(input: PlanInput): Map<string, Instance> {
  const out = new Map<string, Instance>();
  const add = (volumeId: string, generation: number, localGeneration: number): Instance => {
    const key = volumeInstanceKey(volumeId, generation, localGeneration);
    let inst = out.get(key);
    if (!inst) out.set(key, (inst = { key, volumeId, generation, localGeneration, refs: [], refCount: 0 }));
    return inst;
  };
  for (const r of input.volumeRefs.values()) add(r.volumeId, r.generation, r.localGeneration).refs.push(r);
  for (const key of [...input.memory.volumes.keys(), ...input.facts.volumeDirs]) {
    const m = /^(.+)#(\d+)#(\d+)$/.exec(key);
    if (m) add(m[1] as string, Number(m[2]), Number(m[3]));
  }
  // The VolumeConfig holds the newest instance of its id#generation (older ones are purged copies).
  const newest = new Map<string, Instance>();
  for (const inst of out.values()) {
    const vk = volumeKey(inst.volumeId, inst.generation);
    inst.config = input.volumes.get(vk);
    const best = newest.get(vk);
    if (!best || inst.localGeneration > best.localGeneration) newest.set(vk, inst);
  }
  for (const inst of out.values()) {
    const held = inst.config && newest.get(volumeKey(inst.volumeId, inst.generation)) === inst ? 1 : 0;
    inst.refCount = held + inst.refs.length;
  }
  return out;
}

function base(inst: Instance, kind: VolumeStatus['kind']): VolumeStatus {
  return {
    volumeId: inst.volumeId, generation: inst.generation, localGeneration: inst.localGeneration,
    ...(inst.config?.name !== undefined ? { name: inst.config.name } : {}),
    state: 'INITIAL', kind, readonly: inst.config?.readonly ?? false,
    ...(inst.config?.maxSizeBytes ? { maxSizeBytes: inst.config.maxSizeBytes } : {}),
    refCount: inst.refCount,
  };
}

function createdStatus(inst: Instance, c: CreatedVolume): VolumeStatus {
  const s: VolumeStatus = { ...base(inst, c.kind), state: 'CREATED_VOLUME', createdAt: c.createdAt };
  for (const f of ['contentTreeId', 'contentDigest', 'imageRef', 'imageId', 'hostPath'] as const) if (c[f] !== undefined) s[f] = c[f];
  return s;
}

/** Before creation: the content's state, and a create step once a ref wants the volume. */
function pendingStatus(input: PlanInput, inst: Instance, trees: ReadonlyMap<string, ContentTreeStatus>, steps: Step[]): VolumeStatus {
  const now = input.facts.now;
  const prev = input.published.volumes.get(inst.key)?.error;
  const err = (msg: string, retryCondition: string): ErrorInfo =>
    errorInfo(msg, now, { prev, source: SOURCE, retryCondition, entities: [{ type: 'volume', id: inst.key }] });
  const cfg = inst.config;
  if (!cfg) return { ...base(inst, 'directory'), error: err(`volume ${inst.volumeId}#${inst.generation}: no such volume in the config`, 'waits for the volume config') };
  const origin = cfg.origin;
  const tree = origin.type === 'download' ? trees.get(origin.contentTreeId) : undefined;
  const kind: VolumeStatus['kind'] = tree?.format === 'container' ? 'image' : 'directory';
  const s = base(inst, kind);
  if (origin.type === 'download') {
    s.contentTreeId = origin.contentTreeId;
    if (!tree) return { ...s, error: err(`volume ${inst.key}: content tree ${origin.contentTreeId} not found`, 'waits for the content tree config') };
    s.state = tree.state;
    if (tree.currentBytes !== undefined) s.currentBytes = tree.currentBytes;
    if (tree.totalBytes !== undefined) s.totalBytes = tree.totalBytes;
    if (tree.error) s.error = tree.error;
    if (tree.state !== 'LOADED') return s;
  } else {
    s.state = 'LOADED'; // blank: nothing to fetch
  }
  if (!inst.refs.some((r) => !r.verifyOnly)) return s;
  const failed = input.memory.stepErrors.get(`volume:${inst.key}`);
  if (failed) return { ...s, error: failed };
  const hostPath = path.join(input.facts.volumesDir, inst.key);
  const volume: CreatedVolume = { kind, createdAt: now };
  if (tree) Object.assign(volume, { contentTreeId: tree.contentTreeId, contentDigest: tree.digest });
  if (kind === 'image') {
    steps.push({ kind: 'createVolume', key: inst.key, volume: { ...volume, imageRef: tree?.imageRef, imageId: tree?.imageId } });
    return { ...s, state: 'CREATING_VOLUME' };
  }
  const need = (tree ? (tree.totalBytes ?? 0) : 0) + configItem(input.items, 'storage.reserve.mib') * MIB;
  if (input.facts.freeBytes < need) {
    return { ...s, error: err(`volume ${inst.key}: not enough space: need ${need} bytes (with storage.reserve.mib), ${input.facts.freeBytes} free`, 'retried when space is freed') };
  }
  steps.push({
    kind: 'createVolume', key: inst.key, volume: { ...volume, hostPath },
    ...(tree?.path ? { copyFrom: tree.path, fileName: path.posix.basename(input.contentTrees.get(tree.contentTreeId)?.url ?? 'content') || 'content' } : {}),
  });
  return { ...s, state: 'CREATING_VOLUME' };
}

function refStatus(r: Readonly<VolumeRefConfig>, v: VolumeStatus): VolumeRefStatus {
  const s: VolumeRefStatus = {
    appId: r.appId, volumeId: r.volumeId, generation: r.generation, localGeneration: r.localGeneration,
    verifyOnly: r.verifyOnly, state: v.state, kind: v.kind, readonly: v.readonly,
    ...(r.mountDir !== undefined ? { mountDir: r.mountDir } : {}),
  };
  for (const f of ['imageRef', 'imageId', 'hostPath', 'currentBytes', 'totalBytes', 'error'] as const) if (v[f] !== undefined) (s as Record<string, unknown>)[f] = v[f];
  return s;
}

export interface VolumePlan {
  volumes: Map<string, VolumeStatus>;
  volumeRefs: Map<string, VolumeRefStatus>;
  /** Volumes using each content tree (created ones count toward the tree they came from). */
  treeRefs: Map<string, number>;
  /** Images held by created image volumes. */
  imageRefs: Set<string>;
}

export function planVolumes(input: PlanInput, trees: ReadonlyMap<string, ContentTreeStatus>, steps: Step[]): VolumePlan {
  const out: VolumePlan = { volumes: new Map(), volumeRefs: new Map(), treeRefs: new Map(), imageRefs: new Set() };
  for (const inst of instances(input).values()) {
    const created = input.memory.volumes.get(inst.key);
    const onDisk = input.facts.volumeDirs.has(inst.key);
    if (inst.refCount === 0) {
      if (created || onDisk) steps.push({ kind: 'deleteVolume', key: inst.key, hostPath: created?.hostPath ?? (onDisk ? path.join(input.facts.volumesDir, inst.key) : undefined) });
      continue;
    }
    let status: VolumeStatus;
    if (created) status = createdStatus(inst, created);
    else if (onDisk && inst.config) {
      // Found again after a restart: the directory is the volume.
      const found: CreatedVolume = { kind: 'directory', createdAt: input.facts.now, hostPath: path.join(input.facts.volumesDir, inst.key) };
      if (inst.config.origin.type === 'download') found.contentTreeId = inst.config.origin.contentTreeId;
      steps.push({ kind: 'createVolume', key: inst.key, volume: found });
      status = createdStatus(inst, found);
    } else status = pendingStatus(input, inst, trees, steps);
    out.volumes.set(inst.key, status);
    if (status.imageRef && stateOrder(status.state) >= stateOrder('CREATED_VOLUME' as SwState)) out.imageRefs.add(status.imageRef);
    const ct = status.contentTreeId;
    if (ct) out.treeRefs.set(ct, (out.treeRefs.get(ct) ?? 0) + 1);
    for (const r of inst.refs) out.volumeRefs.set(volumeRefKey(r), refStatus(r, status));
  }
  return out;
}
