// The pure planner: from the configs, what the engine shows and what domainmgr
// remembers, the steps that bring the engine closer to the configs. Re-run after
// every change; steps are idempotent, so a repeated step is harmless.
import type { DomainConfig } from '../../pubsub/collections/apps';
import { crashesInWindow, exitKeyOf, hasRun, type AppRecord, type Limits, type ObservedContainer } from './records';

export type Step =
  | { kind: 'create'; appId: string }
  | { kind: 'start'; appId: string; containerId: string; restart: boolean }
  | { kind: 'stop'; appId: string; containerId: string }
  | { kind: 'remove'; appId?: string; containerId: string; reason: string }
  | { kind: 'recreate'; appId: string; containerId: string }
  | ({ kind: 'restart-after-backoff' } & ExitStep)
  | ({ kind: 'mark-broken' } & ExitStep)
  | { kind: 'remove-network'; networkId: string; name: string };
/** An exit of a container that should run: which one, and the run it ended. */
export interface ExitStep {
  appId: string;
  containerId: string;
  exitKey: string;
  exitCode: number;
  finishedAt: string;
  /** Read output from this time on: only the last run's (absent: all of it). */
  logsSince?: string;
}
export type StepKind = Step['kind'];

export interface ObservedNetwork {
  id: string;
  name: string;
}

export interface PlanInput {
  configs: ReadonlyMap<string, DomainConfig>;
  containers: readonly ObservedContainer[];
  /** Owned networks of this instance. */
  networks: readonly ObservedNetwork[];
  /** Docker names of the networks the configs need. */
  neededNetworks: ReadonlySet<string>;
  records: ReadonlyMap<string, AppRecord>;
  now: number;
  limits: Limits;
  /** false until the configs are known complete: nothing is removed before. */
  mayRemove: boolean;
  /**
   * Apps the device config still names. Their containers are never removed for lacking a
   * DomainConfig: after a restart zedmanager may not have re-published theirs yet, and the
   * running container is to be adopted, not replaced.
   */
  configuredApps: ReadonlySet<string>;
}

export interface Plan {
  steps: Step[];
  /** The earliest time a waiting step becomes due (a restart or a retry). */
  wakeAt?: number;
}

export function plan(input: PlanInput): Plan {
  const steps: Step[] = [];
  let wakeAt: number | undefined;
  const wake = (t: number): void => { wakeAt = wakeAt === undefined ? t : Math.min(wakeAt, t); };
  const byApp = new Map<string, ObservedContainer[]>();
  for (const c of input.containers) {
    const cfg = c.appId === undefined ? undefined : input.configs.get(c.appId);
    if (!cfg) {
      const configured = c.appId !== undefined && input.configuredApps.has(c.appId);
      if (input.mayRemove && !configured) steps.push({ kind: 'remove', appId: c.appId, containerId: c.id, reason: 'no app in the device config names it' });
      continue;
    }
    byApp.set(cfg.appId, [...(byApp.get(cfg.appId) ?? []), c]);
  }
  for (const cfg of input.configs.values()) {
    const [keep, ...extra] = rankContainers(byApp.get(cfg.appId) ?? [], cfg);
    for (const c of extra) steps.push({ kind: 'remove', appId: cfg.appId, containerId: c.id, reason: 'a second container for the app' });
    const rec = input.records.get(cfg.appId);
    const app = planApp(cfg, keep, rec, input.now, input.limits);
    steps.push(...app.steps);
    if (app.wakeAt !== undefined) wake(app.wakeAt);
  }
  if (input.mayRemove) {
    for (const n of input.networks) {
      if (!input.neededNetworks.has(n.name)) steps.push({ kind: 'remove-network', networkId: n.id, name: n.name });
    }
  }
  return { steps, wakeAt };
}

/** The container to keep first: the right spec, running, then the newest start. */
function rankContainers(cs: ObservedContainer[], cfg: DomainConfig): ObservedContainer[] {
  const score = (c: ObservedContainer): number => (c.specHash === cfg.specHash ? 2 : 0) + (c.running ? 1 : 0);
  return [...cs].sort((a, b) => score(b) - score(a) || b.startedAt.localeCompare(a.startedAt));
}

export function planApp(cfg: DomainConfig, c: ObservedContainer | undefined, rec: AppRecord | undefined, now: number, limits: Limits): Plan {
  const appId = cfg.appId;
  // A failed step waits for its retry time.
  if (rec?.failure && now < rec.failure.retryAt) return { steps: [], wakeAt: rec.failure.retryAt };
  if (!cfg.activate) {
    return c?.running ? { steps: [{ kind: 'stop', appId, containerId: c.id }] } : { steps: [] };
  }
  if (!c) return { steps: [{ kind: 'create', appId }] };
  if (c.specHash !== cfg.specHash) return { steps: [{ kind: 'recreate', appId, containerId: c.id }] };
  if (c.running || c.status === 'removing' || c.status === 'paused') return { steps: [] };
  if (!hasRun(c)) return { steps: [{ kind: 'start', appId, containerId: c.id, restart: false }] };
  const exitKey = exitKeyOf(c) ?? `${c.id}@${c.finishedAt}`;
  if (rec && rec.exitKey === exitKey) {
    if (rec.broken) return { steps: [] };
    if (rec.restartDue === undefined) return { steps: [{ kind: 'start', appId, containerId: c.id, restart: false }] };
    if (now >= rec.restartDue) return { steps: [{ kind: 'start', appId, containerId: c.id, restart: true }] };
    return { steps: [], wakeAt: rec.restartDue };
  }
  // An exit not yet accounted for: the container died while it should run.
  const crashes = rec ? crashesInWindow(rec, now, limits).length : 0;
  const previousExitAt = rec?.exitKey?.startsWith(`${c.id}@`) ? rec.exitKey.slice(c.id.length + 1) : undefined;
  const logsSince = previousExitAt ? lastRunBoundary(previousExitAt, c.startedAt) : undefined;
  const exit = { appId, containerId: c.id, exitKey, exitCode: c.exitCode, finishedAt: c.finishedAt, ...(logsSince ? { logsSince } : {}) };
  return { steps: [{ kind: crashes + 1 >= limits.crashLimit ? 'mark-broken' : 'restart-after-backoff', ...exit }] };
}

/**
 * A time between a container's previous exit and its last start. Neither instant bounds the output
 * on its own: the engine stamps a fast process's lines a little after its FinishedAt, or before its
 * StartedAt. The middle of the gap (at least the 1 s restart backoff) separates the two runs' lines.
 */
export function lastRunBoundary(previousExitAt: string, startedAt: string): string | undefined {
  const a = Date.parse(previousExitAt);
  const b = Date.parse(startedAt);
  if (Number.isNaN(a) || Number.isNaN(b) || b <= a) return undefined;
  return new Date(Math.floor((a + b) / 2)).toISOString();
}
