// volumemgr's loop: waits for the start-up gate, then on every change gathers
// facts, asks the planner, applies the publications and runs the steps (the only
// effects), recording results in memory, until the planner asks for nothing new.
import * as fs from 'node:fs';
import type Docker from 'dockerode';
import type { AgentContext } from '../agent';
import { CoalescedRunner } from '../../lib/coalesced-runner';
import { contentStore } from '../../lib/content-store';
import { dockerClient } from '../../lib/docker';
import {
  ConfigItemValueMapCollection, ContentTreeConfigCollection, DatastoreConfigCollection, VolumeConfigCollection,
} from '../../pubsub/collections/config';
import { configItem } from '../../pubsub/collections/config-items';
import {
  DownloaderConfigCollection, DownloaderStatusCollection, ResolveConfigCollection, ResolveStatusCollection,
  VerifyImageConfigCollection, VerifyImageStatusCollection,
} from '../../pubsub/collections/content';
import {
  ContentTreeStatusCollection, ResolvedTagCollection, VolumeRefConfigCollection, VolumeRefStatusCollection, VolumeStatusCollection,
} from '../../pubsub/collections/volumes';
import type { Publication } from '../../pubsub/publication';
import type { TSchema, Static } from '@sinclair/typebox';
import { listImages } from './image-driver';
import { imageRepoPrefix } from './manifest';
import { plan } from './plan';
import { executeStep, stepId, type StepWorld } from './steps';
import { emptyMemory, type Plan, type PlanInput } from './types';
import { freeBytes, listVolumeDirs } from './volume-driver';

const BLOCKED_RETRY_MIN_MS = 1000;

export class VolumeManager {
  private readonly memory = emptyMemory();
  private images = new Map<string, string>();
  private volumeDirs = new Set<string>();
  private readonly volumesDir: string;
  private readonly docker: Docker;
  private gateOpen = false;
  private crash: (err: unknown) => void = () => undefined;
  private readonly runner: CoalescedRunner;
  /** An image still used by a container is usually freed within seconds (domainmgr removing it): retry soon, backing off to the GC period. */
  private blockedRetry?: NodeJS.Timeout;
  private blockedDelayMs = BLOCKED_RETRY_MIN_MS;

  private readonly pubs;
  private readonly subs;

  constructor(private readonly ctx: AgentContext) {
    // A bug in a pass rejects run(), which the supervisor treats as a crash.
    this.runner = new CoalescedRunner(() => this.pass(), { signal: ctx.signal, onError: (err) => { this.crash(err); return 'stop'; } });
    this.volumesDir = contentStore(ctx.dirs.persist).volumes;
    this.docker = dockerClient(ctx.settings);
    this.pubs = {
      resolve: ctx.publish(ResolveConfigCollection),
      downloader: ctx.publish(DownloaderConfigCollection),
      verify: ctx.publish(VerifyImageConfigCollection),
      contentTrees: ctx.publish(ContentTreeStatusCollection),
      volumes: ctx.publish(VolumeStatusCollection),
      volumeRefs: ctx.publish(VolumeRefStatusCollection),
      resolvedTags: ctx.publish(ResolvedTagCollection),
    };
    const on = { create: () => this.schedule(), modify: () => this.schedule(), delete: () => this.schedule(), synchronized: () => this.schedule(), restarted: () => this.schedule() };
    this.subs = {
      contentTrees: ctx.subscribe(ContentTreeConfigCollection, { ...on, modify: (id) => this.contentTreeChanged(id), delete: (id) => this.contentTreeChanged(id) }),
      datastores: ctx.subscribe(DatastoreConfigCollection, on),
      volumes: ctx.subscribe(VolumeConfigCollection, on),
      items: ctx.subscribe(ConfigItemValueMapCollection, on),
      volumeRefs: ctx.subscribe(VolumeRefConfigCollection, on),
      resolveStatus: ctx.subscribe(ResolveStatusCollection, on),
      downloaderStatus: ctx.subscribe(DownloaderStatusCollection, on),
      verifyStatus: ctx.subscribe(VerifyImageStatusCollection, on),
    };
  }

  /** A changed or removed content tree (a corrected digest or url) gets a fresh start: failures and load errors are forgotten. */
  private contentTreeChanged(id: string): void {
    for (const b of this.pubs.contentTrees.get(id)?.blobs ?? []) {
      this.memory.blobs.delete(b.digest);
      this.memory.manifests.delete(b.digest);
    }
    this.memory.stepErrors.delete(`load:${id}`);
    this.schedule();
  }

  /** EVE's gate: nothing is created or deleted before downloader and verifier restarted and the configs are in. */
  private gateReady(): boolean {
    const s = this.subs;
    return s.downloaderStatus.restarted && s.resolveStatus.restarted && s.verifyStatus.restarted &&
      s.contentTrees.synchronized && s.datastores.synchronized && s.volumes.synchronized &&
      s.items.synchronized && s.volumeRefs.synchronized;
  }

  /** Runs until the signal aborts; a bug in a pass rejects, which the supervisor treats as a crash. */
  async run(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.crash = reject;
      this.ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      this.scheduleGc();
      this.schedule();
    });
    await this.runner.idle();
  }

  private scheduleGc(): void {
    const seconds = configItem(this.subs.items.get('global')?.items, 'timer.gc.content');
    this.ctx.setTimeout(() => {
      void this.gcTick().finally(() => { if (!this.ctx.signal.aborted) this.scheduleGc(); });
    }, seconds * 1000);
  }

  /** Retries what Docker refused or failed, and re-reads Docker's images. */
  private async gcTick(): Promise<void> {
    if (!this.gateOpen) return;
    this.memory.removeBlocked.clear();
    this.memory.stepErrors.clear();
    await this.refreshImages();
    this.schedule();
  }

  /**
   * Docker's images with this instance's tag prefix. If Docker cannot answer, the last list stands:
   * loads still check Docker first, and nothing is removed that is not listed.
   */
  private async refreshImages(): Promise<void> {
    try {
      this.images = await listImages(this.docker, imageRepoPrefix(this.ctx.settings.instance));
    } catch (err) {
      this.ctx.log.warn('cannot list Docker images; retried at the next GC', { err, socket: this.ctx.settings.dockerSocket });
    }
  }

  /** Asks for a pass; passes never overlap and triggers during one coalesce into the next. */
  schedule(): void {
    this.runner.trigger();
  }

  private async pass(): Promise<void> {
    if (!this.gateOpen) {
      if (!this.gateReady()) return;
      await this.openGate();
    }
    await this.runPasses();
    this.retryBlockedSoon();
  }

  private retryBlockedSoon(): void {
    if (this.memory.removeBlocked.size === 0) {
      this.blockedDelayMs = BLOCKED_RETRY_MIN_MS;
      return;
    }
    if (this.blockedRetry) return;
    const gcMs = configItem(this.subs.items.get('global')?.items, 'timer.gc.content') * 1000;
    const delay = Math.min(this.blockedDelayMs, gcMs);
    this.blockedDelayMs = Math.min(this.blockedDelayMs * 2, gcMs);
    this.blockedRetry = this.ctx.setTimeout(() => {
      this.blockedRetry = undefined;
      this.memory.removeBlocked.clear();
      this.schedule();
    }, delay);
  }

  private async openGate(): Promise<void> {
    this.volumeDirs = listVolumeDirs(this.volumesDir);
    await this.refreshImages();
    this.gateOpen = true;
    this.ctx.log.info('start-up gate open: downloader and verifier restarted, configs synchronized', {
      images: this.images.size, volumeDirs: this.volumeDirs.size,
    });
  }

  /** Plans and acts until the planner asks only for what was already tried in this run. */
  private async runPasses(): Promise<void> {
    const attempted = new Set<string>();
    for (;;) {
      const p = plan(this.input());
      this.apply(p);
      const steps = p.steps.filter((s) => !attempted.has(stepId(s)));
      if (steps.length === 0 || this.ctx.signal.aborted) return;
      for (const s of steps) {
        attempted.add(stepId(s));
        await executeStep(this.stepWorld(), s);
      }
    }
  }

  private input(): PlanInput {
    return {
      contentTrees: this.subs.contentTrees.getAll(),
      datastores: this.subs.datastores.getAll(),
      volumes: this.subs.volumes.getAll(),
      volumeRefs: this.subs.volumeRefs.getAll(),
      items: this.subs.items.get('global')?.items,
      resolveStatus: this.subs.resolveStatus.getAll(),
      downloaderStatus: this.subs.downloaderStatus.getAll(),
      verifyStatus: this.subs.verifyStatus.getAll(),
      published: {
        downloader: this.pubs.downloader.getAll(),
        verify: this.pubs.verify.getAll(),
        resolvedTags: this.pubs.resolvedTags.getAll(),
        contentTrees: this.pubs.contentTrees.getAll(),
        volumes: this.pubs.volumes.getAll(),
      },
      memory: this.memory,
      facts: {
        now: new Date().toISOString(),
        instance: this.ctx.settings.instance,
        images: this.images,
        volumeDirs: this.volumeDirs,
        volumesDir: this.volumesDir,
        freeBytes: freeBytes(fs.existsSync(this.volumesDir) ? this.volumesDir : this.ctx.dirs.persist),
      },
    };
  }

  private stepWorld(): StepWorld {
    return { memory: this.memory, images: this.images, volumeDirs: this.volumeDirs, volumesDir: this.volumesDir, docker: this.docker, log: this.ctx.log };
  }

  private apply(p: Plan): void {
    sync(this.pubs.resolve, p.resolve);
    sync(this.pubs.resolvedTags, p.resolvedTags);
    sync(this.pubs.downloader, p.downloader);
    sync(this.pubs.verify, p.verify);
    sync(this.pubs.contentTrees, p.contentTrees);
    sync(this.pubs.volumes, p.volumes);
    sync(this.pubs.volumeRefs, p.volumeRefs);
  }
}

/** Makes a publication hold exactly `want`. */
function sync<S extends TSchema>(pub: Publication<S>, want: ReadonlyMap<string, Static<S>>): void {
  for (const [k, v] of want) pub.publish(k, v);
  for (const k of pub.keys()) if (!want.has(k)) pub.unpublish(k);
}
