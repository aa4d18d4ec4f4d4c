// How each planned step is carried out: the only place volumemgr changes the
// world (files, Docker) and its memory. Each records its result (or error) so
// the next plan sees it; none throws.
import * as fs from 'node:fs';
import type Docker from 'dockerode';
import type { Logger } from '../../lib/log';
import { errorInfo } from './errors';
import { loadImage, removeImage } from './image-driver';
import { parseManifest } from './manifest';
import type { Memory, Step } from './types';
import { createVolumeDir, deleteVolumeDir } from './volume-driver';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** What the steps change besides memory: Docker's images and the volume directories as last seen. */
export interface StepWorld {
  memory: Memory;
  images: Map<string, string>;
  volumeDirs: Set<string>;
  volumesDir: string;
  docker: Docker;
  log: Logger;
}

type Executors = { [K in Step['kind']]: (w: StepWorld, s: Extract<Step, { kind: K }>) => Promise<void> };

const RETRY_AT_GC = 'retried every timer.gc.content';

const executors: Executors = {
  async readManifest(w, s) {
    try {
      const st = await fs.promises.stat(s.path);
      const parsed = st.size > MAX_MANIFEST_BYTES
        ? { kind: 'error' as const, error: `manifest ${s.digest} is ${st.size} bytes, more than ${MAX_MANIFEST_BYTES}` }
        : parseManifest(await fs.promises.readFile(s.path, 'utf8'), s.digest);
      w.memory.manifests.set(s.digest, parsed);
      w.log.info('manifest read', { digest: s.digest, kind: parsed.kind });
    } catch (err) {
      w.log.warn('cannot read verified manifest; retried on the next change', { digest: s.digest, err });
    }
  },
  async blobFailed(w, s) {
    const mem = w.memory.blobs.get(s.digest) ?? { retry: 0 };
    if (s.final) mem.finalError = s.error;
    else mem.retry += 1;
    w.memory.blobs.set(s.digest, mem);
    w.log.warn(s.final ? 'blob failed verification; giving up until the config changes' : 'blob failed verification; fetching again',
      { digest: s.digest, retry: mem.retry, error: s.error.error });
  },
  async loadImage(w, s) {
    try {
      const r = await loadImage(w.docker, s);
      w.images.set(s.imageRef, r.imageId);
      w.memory.stepErrors.delete(`load:${s.contentTreeId}`);
      w.log.info(r.loaded ? 'image loaded' : 'image already in Docker', { imageRef: s.imageRef, imageId: r.imageId });
    } catch (err) {
      w.memory.stepErrors.set(`load:${s.contentTreeId}`, errorInfo(`content tree ${s.contentTreeId}: ${(err as Error).message}`, new Date().toISOString(), {
        source: 'ContentTreeStatus', retryCondition: RETRY_AT_GC,
        entities: [{ type: 'contentTree', id: s.contentTreeId }, { type: 'image', id: s.imageRef }],
      }));
      w.log.warn('image load failed', { imageRef: s.imageRef, err });
    }
  },
  async createVolume(w, s) {
    try {
      if (s.volume.hostPath) await createVolumeDir(w.volumesDir, s.key, s.copyFrom, s.fileName);
      w.memory.volumes.set(s.key, s.volume);
      if (s.volume.hostPath) w.volumeDirs.add(s.key);
      w.log.info('volume ready', { key: s.key, kind: s.volume.kind, hostPath: s.volume.hostPath, imageRef: s.volume.imageRef });
    } catch (err) {
      w.memory.stepErrors.set(`volume:${s.key}`, errorInfo(`volume ${s.key}: ${(err as Error).message}`, new Date().toISOString(), {
        source: 'VolumeStatus', retryCondition: RETRY_AT_GC, entities: [{ type: 'volume', id: s.key }],
      }));
      w.log.warn('volume creation failed', { key: s.key, err });
    }
  },
  async deleteVolume(w, s) {
    try {
      if (s.hostPath) await deleteVolumeDir(s.hostPath);
      w.memory.volumes.delete(s.key);
      w.volumeDirs.delete(s.key);
      w.log.info('volume removed: no references left', { key: s.key, hostPath: s.hostPath });
    } catch (err) {
      w.log.warn('volume removal failed; retried on the next change', { key: s.key, err });
    }
  },
  async removeImage(w, s) {
    try {
      if ((await removeImage(w.docker, s.imageRef)) === 'in-use') {
        w.memory.removeBlocked.add(s.imageRef);
        w.log.info('image still used by a container; retried at the next GC', { imageRef: s.imageRef });
      } else {
        w.images.delete(s.imageRef);
        w.log.info('image removed: nothing needs it', { imageRef: s.imageRef });
      }
    } catch (err) {
      w.memory.removeBlocked.add(s.imageRef);
      w.log.warn('image removal failed; retried at the next GC', { imageRef: s.imageRef, err });
    }
  },
};

export function executeStep(w: StepWorld, s: Step): Promise<void> {
  return (executors[s.kind] as (w: StepWorld, s: Step) => Promise<void>)(w, s);
}

/** One identity per object a step acts on: a run never repeats a step it already tried. */
export function stepId(s: Step): string {
  switch (s.kind) {
    case 'readManifest': case 'blobFailed': return `${s.kind}:${s.digest}`;
    case 'loadImage': return `${s.kind}:${s.contentTreeId}`;
    case 'createVolume': case 'deleteVolume': return `${s.kind}:${s.key}`;
    case 'removeImage': return `${s.kind}:${s.imageRef}`;
  }
}
