// The downloader's decisions, pure: given the configs volumemgr published, what
// each download is doing, the clock and the limits, which downloads to start,
// abort, restart, delete or forget. No I/O and no clock reads: main.ts executes
// the steps.
import type { DownloaderConfig } from '../../pubsub/collections/content';
import { backoffDelay, type BackoffPolicy } from '../../lib/backoff';

export type JobPhase =
  /** Waiting for a slot (or for its first start). */
  | 'queued'
  | 'running'
  /** Failed; may start again at nextAttemptAt. */
  | 'failed'
  | 'downloaded'
  /** Its files were deleted on refCount 0; nothing more to do until the config changes. */
  | 'deleted';

export interface Job {
  readonly phase: JobPhase;
  /** The config retry value this job answers; ADOPT_RETRY for a file found at start-up (it answers any). */
  readonly retry: number;
  /** Enqueue order: queued downloads start in this order. */
  readonly seq: number;
  readonly failures: number;
  readonly nextAttemptAt?: number;
}

export const ADOPT_RETRY = -1;

export interface Published {
  refCount: number;
  retry: number;
}

export type Step =
  /** A new config: publish INITIAL and queue it. */
  | { action: 'enqueue'; digest: string }
  | { action: 'start'; digest: string }
  /** refCount 0: abort if running, delete the file and partial, unpublish. */
  | { action: 'delete'; digest: string }
  /** The config vanished: abort if running, unpublish, keep the partial for a later resume. */
  | { action: 'forget'; digest: string }
  /** The config's retry was bumped: abort if running, delete the old file, queue afresh. */
  | { action: 'refetch'; digest: string }
  /** Only the refCount (or, for an adopted file, retry) changed: republish it. */
  | { action: 'refcount'; digest: string };

export interface PlanInput {
  configs: ReadonlyMap<string, DownloaderConfig>;
  jobs: ReadonlyMap<string, Job>;
  /** What each status currently says, to notice refCount-only changes. */
  published: ReadonlyMap<string, Published>;
  now: number;
  maxConcurrent: number;
}

export function planDownloads(input: PlanInput): Step[] {
  const steps: Step[] = [];
  const { configs, jobs } = input;
  for (const [digest, job] of jobs) {
    // A file found at start-up stays published (refCount 0) until volumemgr claims or deletes it.
    const foundAtStart = job.phase === 'downloaded' && job.retry === ADOPT_RETRY;
    if (!configs.has(digest) && !foundAtStart) steps.push({ action: 'forget', digest });
  }
  const settled = new Set<string>();
  for (const [digest, config] of configs) {
    const job = jobs.get(digest);
    const step = planOne(config, job, input.published.get(digest));
    if (step) steps.push(step);
    if (step && step.action !== 'refcount') settled.add(digest);
  }
  steps.push(...startSteps(input, settled));
  return steps;
}

function planOne(config: DownloaderConfig, job: Job | undefined, published: Published | undefined): Step | undefined {
  const digest = config.digest;
  if (config.refCount === 0) return job?.phase === 'deleted' ? undefined : { action: 'delete', digest };
  if (!job || job.phase === 'deleted') return { action: 'enqueue', digest };
  if (job.retry !== ADOPT_RETRY && config.retry > job.retry) return { action: 'refetch', digest };
  if (published?.refCount !== config.refCount || published.retry !== config.retry) return { action: 'refcount', digest };
  return undefined;
}

/** Fills free slots with due downloads, oldest first. */
function startSteps(input: PlanInput, settled: ReadonlySet<string>): Step[] {
  let running = 0;
  const due: Array<[string, Job]> = [];
  for (const [digest, job] of input.jobs) {
    if (settled.has(digest) || !input.configs.has(digest)) continue;
    if (job.phase === 'running') running++;
    else if (job.phase === 'queued' || (job.phase === 'failed' && (job.nextAttemptAt ?? 0) <= input.now)) due.push([digest, job]);
  }
  due.sort((a, b) => a[1].seq - b[1].seq);
  const free = Math.max(0, input.maxConcurrent - running);
  return due.slice(0, free).map(([digest]) => ({ action: 'start', digest }));
}

/** The job after an attempt failed: when it may run again. */
export function afterFailure(job: Job, now: number, policy: BackoffPolicy): Job {
  const failures = job.failures + 1;
  return { ...job, phase: 'failed', failures, nextAttemptAt: now + backoffDelay(policy, failures, () => 0) };
}

/** When the planner next needs to run for a retry, if any job waits for one. */
export function nextWake(jobs: ReadonlyMap<string, Job>): number | undefined {
  let next: number | undefined;
  for (const job of jobs.values()) {
    if (job.phase === 'failed' && job.nextAttemptAt !== undefined && (next === undefined || job.nextAttemptAt < next)) next = job.nextAttemptAt;
  }
  return next;
}

/** EVE's retry condition text. */
export function retryCondition(delayMs: number, retried: number): string {
  return `will retry in ${Math.max(1, Math.round(delayMs / 1000))} s; retried ${retried} times`;
}
