// Executes the planner's steps: keeps each download's job, runs the fetches,
// and publishes DownloaderStatus (progress at most every PROGRESS_MS).
import type { Static } from '@sinclair/typebox';
import type { AgentContext } from '../agent';
import type { BackoffPolicy } from '../../lib/backoff';
import { severityFor } from '../../pubsub/collections/common';
import { configItem } from '../../pubsub/collections/config-items';
import type { Datastore } from '../../pubsub/collections/config';
import type { DownloaderConfig, DownloaderStatusSchema } from '../../pubsub/collections/content';
import type { Publication } from '../../pubsub/publication';
import type { Fetcher, FetchResult } from './fetch-driver';
import { ADOPT_RETRY, afterFailure, nextWake, planDownloads, retryCondition, type Job, type Published, type Step } from './planner';
import type { PendingStore } from './store-driver';

type Status = Static<typeof DownloaderStatusSchema>;

const PROGRESS_MS = 250;

export interface DownloadInputs {
  configs(): ReadonlyMap<string, DownloaderConfig>;
  datastore(id: string): Datastore | undefined;
  items(): Readonly<Record<string, string>> | undefined;
}

interface Run {
  ctl: AbortController;
  done: Promise<void>;
}

export class Downloads {
  private readonly jobs = new Map<string, Job>();
  private readonly runs = new Map<string, Run>();
  /** File work (deletes) waiting for an aborted run to settle; no new start until it is done. */
  private readonly busy = new Map<string, Promise<void>>();
  private readonly failingSince = new Map<string, number>();
  private seq = 0;
  private wake?: NodeJS.Timeout;

  constructor(
    private readonly ctx: AgentContext,
    private readonly pub: Publication<typeof DownloaderStatusSchema>,
    private readonly store: PendingStore,
    private readonly fetcher: Fetcher,
    private readonly inputs: DownloadInputs,
  ) {}

  /** Start-up: publish every complete pending file (refCount 0) and drop junk. */
  scan(): void {
    const { complete, removed } = this.store.scan();
    if (removed.length) this.ctx.log.info('removed leftover partial files without a sidecar', { files: removed });
    for (const key of this.pub.keys()) if (!complete.has(key)) this.pub.unpublish(key);
    for (const [digest, size] of complete) {
      this.jobs.set(digest, { phase: 'downloaded', retry: ADOPT_RETRY, seq: this.seq++, failures: 0 });
      this.publish({ digest, state: 'DOWNLOADED', refCount: 0, retry: 0, currentBytes: size, totalBytes: size, path: this.store.completePath(digest), retryCount: 0 });
    }
  }

  /** A datastore appeared or changed: failed downloads may work now, try them at once. */
  datastoresChanged(): void {
    for (const [digest, job] of this.jobs) if (job.phase === 'failed') this.jobs.set(digest, { ...job, nextAttemptAt: 0 });
    this.replan();
  }

  replan(): void {
    if (this.ctx.signal.aborted) return;
    // A queued job can start in the next round: plan until nothing changes (a few rounds at most).
    for (let round = 0; round < 3; round++) {
      const published = new Map<string, Published>();
      for (const [k, v] of this.pub.getAll()) published.set(k, { refCount: v.refCount, retry: v.retry });
      const steps = planDownloads({
        configs: this.inputs.configs(), jobs: this.jobs, published, now: Date.now(),
        maxConcurrent: configItem(this.inputs.items(), 'download.max.concurrent'),
      });
      for (const step of steps) this.execute(step);
      if (steps.every((s) => s.action === 'start')) break;
    }
    this.scheduleWake();
  }

  /** Aborts every download and waits for them to settle (the partials stay). */
  async stop(): Promise<void> {
    for (const run of this.runs.values()) run.ctl.abort();
    await Promise.allSettled([...this.runs.values()].map((r) => r.done));
    await Promise.allSettled(this.busy.values());
  }

  private execute(step: Step): void {
    const d = step.digest;
    const config = this.inputs.configs().get(d);
    switch (step.action) {
      case 'enqueue':
        this.jobs.set(d, { phase: 'queued', retry: config!.retry, seq: this.seq++, failures: 0 });
        this.failingSince.delete(d);
        this.publish({ digest: d, state: 'INITIAL', refCount: config!.refCount, retry: config!.retry, currentBytes: this.store.partSize(d), retryCount: 0 });
        return;
      case 'start':
        if (!this.busy.has(d) && !this.runs.has(d)) this.start(config!);
        return;
      case 'delete':
        this.jobs.set(d, { phase: 'deleted', retry: config!.retry, seq: this.seq++, failures: 0 });
        this.afterAbort(d, () => this.store.removeAll(d));
        if (this.pub.get(d)) this.pub.unpublish(d);
        this.ctx.log.info('deleting download (refCount 0)', { digest: d });
        return;
      case 'forget':
        this.jobs.delete(d);
        this.afterAbort(d, () => undefined);
        if (this.pub.get(d)) this.pub.unpublish(d);
        return;
      case 'refetch':
        this.jobs.set(d, { phase: 'queued', retry: config!.retry, seq: this.seq++, failures: 0 });
        this.failingSince.delete(d);
        this.afterAbort(d, () => this.store.removeAll(d));
        this.publish({ digest: d, state: 'INITIAL', refCount: config!.refCount, retry: config!.retry, currentBytes: 0, retryCount: 0 });
        this.ctx.log.info('fetching again (retry bumped)', { digest: d, retry: config!.retry });
        return;
      case 'refcount': {
        const job = this.jobs.get(d);
        if (job?.retry === ADOPT_RETRY) this.jobs.set(d, { ...job, retry: config!.retry });
        this.update(d, { refCount: config!.refCount, retry: config!.retry });
        return;
      }
    }
  }

  /** Aborts a running download; `then` runs once it has settled. */
  private afterAbort(digest: string, then: () => void): void {
    const run = this.runs.get(digest);
    run?.ctl.abort();
    const prev = this.busy.get(digest);
    const work = Promise.all([run?.done, prev]).then(then).catch((err) => this.ctx.log.error('removing download files failed', { digest, err: String(err) }));
    const tracked = work.finally(() => {
      if (this.busy.get(digest) === tracked) this.busy.delete(digest);
      this.replan();
    });
    this.busy.set(digest, tracked);
  }

  private start(config: DownloaderConfig): void {
    const d = config.digest;
    const job = this.jobs.get(d)!;
    this.jobs.set(d, { ...job, phase: 'running' });
    const ctl = new AbortController();
    const retryCount = job.failures;
    this.update(d, { state: 'DOWNLOADING', startedAt: new Date().toISOString(), retryCount });
    const progress = this.progressPublisher(d, ctl);
    const items = this.inputs.items();
    const done = this.fetcher
      .fetch({
        config, signal: ctl.signal,
        datastores: config.datastoreIds.map((id) => this.inputs.datastore(id)),
        stallMs: configItem(items, 'timer.download.stalled') * 1000,
        reserveBytes: configItem(items, 'storage.reserve.mib') * 2 ** 20,
        onProgress: progress.report,
      })
      .then((res) => this.finished(config, ctl, res), (err: Error) => this.failed(config, ctl, err))
      .finally(() => {
        progress.cancel();
        if (this.runs.get(d)?.ctl === ctl) this.runs.delete(d);
        this.replan();
      });
    this.runs.set(d, { ctl, done });
  }

  /** Publishes progress at most every PROGRESS_MS, the latest figures last (trailing edge). */
  private progressPublisher(digest: string, ctl: AbortController): { report(cur: number, total?: number): void; cancel(): void } {
    let last = 0;
    let timer: NodeJS.Timeout | undefined;
    let latest: { currentBytes: number; totalBytes?: number } = { currentBytes: 0 };
    const flush = (): void => {
      timer = undefined;
      last = Date.now();
      if (!ctl.signal.aborted && this.runs.get(digest)?.ctl === ctl) this.update(digest, latest);
    };
    return {
      report: (currentBytes, totalBytes) => {
        latest = { currentBytes, totalBytes };
        if (timer) return;
        const wait = last + PROGRESS_MS - Date.now();
        if (wait <= 0) flush();
        else timer = this.ctx.setTimeout(flush, wait);
      },
      cancel: () => clearTimeout(timer),
    };
  }

  private finished(config: DownloaderConfig, ctl: AbortController, res: FetchResult): void {
    const d = config.digest;
    if (ctl.signal.aborted || this.runs.get(d)?.ctl !== ctl) return;
    this.jobs.set(d, { ...this.jobs.get(d)!, phase: 'downloaded' });
    this.failingSince.delete(d);
    this.update(d, {
      state: 'DOWNLOADED', currentBytes: res.sizeBytes, totalBytes: res.sizeBytes, path: this.store.completePath(d),
      mediaType: res.mediaType, datastoreId: res.datastoreId, downloadedAt: new Date().toISOString(), error: undefined, firstError: undefined,
    });
    this.ctx.log.info('downloaded', { digest: d, bytes: res.sizeBytes, datastore: res.datastoreId });
  }

  private failed(config: DownloaderConfig, ctl: AbortController, err: Error): void {
    const d = config.digest;
    if (ctl.signal.aborted) return; // we aborted it (delete, forget, refetch, stop); a stall aborts another signal
    const now = Date.now();
    const job = afterFailure(this.jobs.get(d)!, now, this.policy());
    this.jobs.set(d, job);
    const since = this.failingSince.get(d) ?? now;
    this.failingSince.set(d, since);
    const old = this.pub.get(d);
    const retried = job.failures - 1;
    this.update(d, {
      state: 'INITIAL', currentBytes: this.store.partSize(d), retryCount: retried,
      firstError: old?.firstError ?? err.message,
      error: {
        error: err.message, time: new Date(now).toISOString(), severity: severityFor(retried, now - since),
        retryCondition: retryCondition((job.nextAttemptAt ?? now) - now, retried),
        entities: [{ type: 'blob', id: d }], source: 'DownloaderStatus',
      },
    });
    this.ctx.log.warn('download failed', { digest: d, err: err.message, failures: job.failures });
  }

  private policy(): BackoffPolicy {
    return { minMs: 1000, maxMs: configItem(this.inputs.items(), 'timer.download.retry') * 1000, jitter: 0 };
  }

  private scheduleWake(): void {
    const at = nextWake(this.jobs);
    if (this.wake) clearTimeout(this.wake);
    this.wake = at === undefined ? undefined : this.ctx.setTimeout(() => this.replan(), Math.max(0, at - Date.now()) + 5);
  }

  private update(digest: string, patch: Partial<Status>): void {
    const old = this.pub.get(digest);
    if (!old) return;
    this.publish({ ...old, ...patch });
  }

  private publish(status: Status): void {
    const clean = Object.fromEntries(Object.entries(status).filter(([, v]) => v !== undefined)) as Status;
    this.pub.publish(status.digest, clean);
  }
}
