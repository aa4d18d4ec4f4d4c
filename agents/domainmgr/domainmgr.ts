// domainmgr's loop: a single-flight pass (observe the engine, plan, execute,
// publish) run whenever a config, a Docker event or a due time asks for one.
import type Docker from 'dockerode';
import { backoffDelay, sleep } from '../../lib/backoff';
import { CoalescedRunner } from '../../lib/coalesced-runner';
import { RateLimitedLog } from '../../lib/log';
import { configItem } from '../../pubsub/collections/config-items';
import type { DomainConfig, DomainMetricSchema, DomainStatus, DomainStatusSchema } from '../../pubsub/collections/apps';
import type { NetworkInstance } from '../../pubsub/collections/config';
import type { Publication } from '../../pubsub/publication';
import type { AgentContext } from '../agent';
import { appNetworks, containerName, networkName } from './container-spec';
import { ContainerDriver } from './container-driver';
import { plan, type Step, type StepKind } from './plan';
import { exitKeyOf, noteCrash, noteFailure, syncRecord, type AppRecord, type Limits, type ObservedContainer } from './records';
import { domainStatus } from './status';
import { MetricsSampler } from './metrics-driver';
import { secretOpener } from '../../lib/device-identity';

/** How long a failed removal waits before it is tried again. */
const DEFERRED_RETRY_MS = 5000;

/** The object a step acts on, for retry bookkeeping. */
function stepTarget(s: Step): string {
  if (s.kind === 'remove-network') return s.networkId;
  if (s.kind === 'remove') return s.containerId;
  return s.appId;
}

/** Steps of one group run in order: an app's steps, or one stray container's. */
function groupOf(s: Exclude<Step, { kind: 'remove-network' }>): string {
  return s.kind === 'remove' ? s.appId ?? s.containerId : s.appId;
}

type Executors = { [K in StepKind]: (s: Extract<Step, { kind: K }>) => Promise<void> };

/** A full pass this often even without events, in case one was missed. */
const RESYNC_MS = 30_000;

export interface DomainInputs {
  configs(): ReadonlyMap<string, DomainConfig>;
  networkInstances(): ReadonlyMap<string, NetworkInstance>;
  items(): Readonly<Record<string, string>> | undefined;
  /** true once the configs are complete and zedmanager has signalled restarted (or the grace ran out). */
  mayRemove(now: number): boolean;
  /** Ids of the apps in the device config (AppInstanceConfig). */
  configuredApps(): ReadonlySet<string>;
}

export class DomainManager {
  private readonly driver: ContainerDriver;
  private readonly records = new Map<string, AppRecord>();
  /** Removals that failed, by container or network id: when to try again. */
  private readonly deferred = new Map<string, number>();
  private readonly rlog: RateLimitedLog;
  private readonly metrics: MetricsSampler;
  private readonly runner: CoalescedRunner;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeTime: number | undefined;
  private observeFailures = 0;
  private passes = 0;
  private configsSnapshot: ReadonlyMap<string, DomainConfig> = new Map();

  constructor(
    private readonly ctx: AgentContext,
    docker: Docker,
    private readonly inputs: DomainInputs,
    private readonly statusPub: Publication<typeof DomainStatusSchema>,
    metricPub: Publication<typeof DomainMetricSchema>,
  ) {
    this.driver = new ContainerDriver(docker, ctx.settings.instance, secretOpener(ctx.dirs));
    this.rlog = new RateLimitedLog(ctx.log);
    this.runner = new CoalescedRunner(() => this.pass(), {
      signal: ctx.signal,
      // A bug in one pass must not stop the loop (nor crash every app's agent): log, try again later.
      onError: (err) => {
        ctx.log.error('domainmgr pass failed', { err: (err as Error).stack ?? String(err) });
        this.wakeAt(Date.now() + 5000);
        return 'continue';
      },
    });
    this.metrics = new MetricsSampler(ctx, this.driver, metricPub, () => this.runningApps());
    ctx.setInterval(() => this.trigger(), RESYNC_MS);
  }

  get limits(): Limits {
    const items = this.inputs.items();
    return {
      crashLimit: configItem(items, 'app.crashloop.limit'),
      crashWindowMs: configItem(items, 'app.crashloop.window') * 1000,
      restartBackoffMaxMs: configItem(items, 'app.restart.backoff.max') * 1000,
      retryMaxMs: configItem(items, 'app.restart.backoff.max') * 1000,
    };
  }

  /** Asks for a pass; passes never overlap, and requests made during one coalesce into the next. */
  trigger(): void {
    this.runner.trigger();
  }

  /** Resolves when no pass is running (or after maxMs). */
  async idle(maxMs: number): Promise<void> {
    await Promise.race([this.runner.idle(), sleep(maxMs)]);
  }

  /** Observe, plan, publish, execute. The first pass adopts what runs; DomainStatus is then signalled restarted. */
  private async pass(): Promise<void> {
    const now = Date.now();
    let containers: ObservedContainer[];
    let networks;
    try {
      containers = await this.driver.listContainers();
      networks = await this.driver.listNetworks();
      this.observeFailures = 0;
    } catch (err) {
      this.observeFailures++;
      this.rlog.warn('observe', 'cannot read containers from the Docker engine; will retry', { err: (err as Error).message });
      this.wakeAt(now + backoffDelay({ minMs: 1000, maxMs: 30_000, jitter: 0.2 }, this.observeFailures));
      return;
    }
    const configs = this.inputs.configs();
    this.configsSnapshot = configs;
    this.syncRecords(configs, containers);
    const limits = this.limits;
    const p = plan({
      configs, containers, networks, neededNetworks: this.neededNetworks(configs), records: this.records, now, limits,
      mayRemove: this.inputs.mayRemove(now), configuredApps: this.inputs.configuredApps(),
    });
    this.publishStatuses(configs, containers, p.steps, now, limits);
    // Something changed: observe the result and publish it. Failures wait for their retry time.
    if (p.steps.length && (await this.execute(p.steps)) > 0) this.runner.trigger();
    if (p.wakeAt !== undefined) this.wakeAt(p.wakeAt);
    if (!this.inputs.mayRemove(now)) this.wakeAt(now + 1000);
    this.metrics.schedule(configItem(this.inputs.items(), 'timer.metric.interval') * 1000);
    this.passes++;
    if (this.passes === 1) this.statusPub.signalRestarted();
  }

  /** Keeps one timer, for the earliest time asked. */
  private wakeAt(t: number): void {
    if (this.wakeTimer && this.wakeTime !== undefined && this.wakeTime <= t) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTime = t;
    this.wakeTimer = this.ctx.setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeTime = undefined;
      this.trigger();
    }, Math.max(10, t - Date.now() + 10));
  }

  private syncRecords(configs: ReadonlyMap<string, DomainConfig>, containers: ObservedContainer[]): void {
    for (const id of [...this.records.keys()]) if (!configs.has(id)) this.records.delete(id);
    for (const cfg of configs.values()) {
      const c = containers.find((x) => x.appId === cfg.appId && x.specHash === cfg.specHash) ?? containers.find((x) => x.appId === cfg.appId);
      this.records.set(cfg.appId, syncRecord(this.records.get(cfg.appId), cfg, c));
    }
  }

  private neededNetworks(configs: ReadonlyMap<string, DomainConfig>): Set<string> {
    const nis = this.inputs.networkInstances();
    const names = new Set<string>();
    for (const cfg of configs.values()) {
      for (const id of cfg.networkInstanceIds) {
        const ni = nis.get(id);
        if (ni) names.add(networkName(this.ctx.settings.instance, ni));
      }
    }
    return names;
  }

  private runningApps(): Array<{ appId: string; containerId: string }> {
    const out: Array<{ appId: string; containerId: string }> = [];
    for (const [appId, s] of this.statusPub.getAll()) if (s.state === 'RUNNING' && s.containerId) out.push({ appId, containerId: s.containerId });
    return out;
  }

  private publishStatuses(configs: ReadonlyMap<string, DomainConfig>, containers: ObservedContainer[], steps: Step[], now: number, limits: Limits): void {
    for (const cfg of configs.values()) {
      const mine = containers.filter((c) => c.appId === cfg.appId);
      const c = mine.find((x) => x.specHash === cfg.specHash && x.running) ?? mine.find((x) => x.specHash === cfg.specHash) ?? mine[0];
      const pending = steps.find((s) => 'appId' in s && s.appId === cfg.appId)?.kind;
      this.publishStatus(domainStatus(cfg, c, this.records.get(cfg.appId), pending, now, limits));
    }
    for (const [key, old] of this.statusPub.getAll()) {
      if (configs.has(key)) continue;
      if (containers.some((c) => c.appId === key)) {
        this.publishStatus({ ...old, state: 'HALTING', activated: false }); // being removed
      } else {
        this.statusPub.unpublish(key);
        this.metrics.forget(key);
      }
    }
  }

  private publishStatus(s: DomainStatus): void {
    try {
      this.statusPub.publish(s.appId, s);
    } catch (err) {
      this.ctx.log.error('cannot publish DomainStatus', { appId: s.appId, err: (err as Error).message });
    }
  }

  /** Runs the steps: one app's in order, apps concurrently, networks last (after the containers on them). */
  private async execute(steps: Step[]): Promise<number> {
    const now = Date.now();
    const due = steps.filter((s) => {
      const at = this.deferred.get(stepTarget(s));
      if (at !== undefined && at > now) this.wakeAt(at);
      return at === undefined || at <= now;
    });
    const groups = new Map<string, Step[]>();
    for (const s of due) if (s.kind !== 'remove-network') groups.set(groupOf(s), [...(groups.get(groupOf(s)) ?? []), s]);
    let done = 0;
    await Promise.all([...groups.values()].map(async (group) => {
      for (const s of group) {
        if (!(await this.executeStep(s))) break;
        done++;
      }
    }));
    for (const s of due) if (s.kind === 'remove-network' && (await this.executeStep(s))) done++;
    return done;
  }

  /** One step; a failure is recorded (the app's error, retried with backoff), never thrown. */
  private async executeStep(s: Step): Promise<boolean> {
    this.ctx.log.info(`step ${s.kind}`, { ...s });
    const appId = s.kind === 'remove-network' ? undefined : s.appId;
    try {
      await (this.executors[s.kind] as (s: Step) => Promise<void>)(s);
      this.deferred.delete(stepTarget(s));
      if (appId) this.update(appId, (r) => (r.failure ? { ...r, failure: undefined } : r));
      return true;
    } catch (err) {
      const rec = appId ? this.records.get(appId) : undefined;
      if (rec && appId && s.kind !== 'remove') {
        this.records.set(appId, noteFailure(rec, s.kind, err, Date.now(), this.limits));
      } else {
        // Removals (of containers no config names, of networks) have no status to carry the error.
        this.deferred.set(stepTarget(s), Date.now() + DEFERRED_RETRY_MS);
        this.wakeAt(Date.now() + DEFERRED_RETRY_MS);
      }
      this.rlog.warn(`step:${s.kind}:${stepTarget(s)}`, `${s.kind} failed; will retry`, { appId, err: (err as Error).message });
      return false;
    }
  }

  private update(appId: string, fn: (r: AppRecord) => AppRecord): void {
    const rec = this.records.get(appId);
    if (rec) this.records.set(appId, fn(rec));
  }

  private get stopTimeout(): number {
    return configItem(this.inputs.items(), 'app.stop.timeout');
  }

  private readonly executors: Executors = {
    create: async (s) => {
      const cfg = this.configsSnapshot.get(s.appId);
      if (!cfg) return;
      const nis = this.inputs.networkInstances();
      const names = appNetworks(cfg, this.ctx.settings.instance, nis);
      for (const id of cfg.networkInstanceIds) await this.driver.ensureNetwork(nis.get(id)!);
      try {
        await this.driver.create(cfg, names);
      } catch (err) {
        throw new Error(`create container for app ${cfg.name} (${cfg.appId}) from ${cfg.imageRef}: ${(err as Error).message}`);
      }
    },
    start: async (s) => {
      try {
        await this.driver.start(s.containerId);
      } catch (err) {
        const cfg = this.configsSnapshot.get(s.appId);
        throw new Error(`start container ${cfg ? containerName(this.ctx.settings.instance, cfg) : s.containerId} of app ${cfg?.name ?? ''} (${s.appId}): ${(err as Error).message}`);
      }
      this.update(s.appId, (r) => ({ ...r, restartDue: undefined, restarts: r.restarts + (s.restart ? 1 : 0) }));
    },
    stop: async (s) => {
      await this.driver.stop(s.containerId, this.stopTimeout);
      const c = await this.driver.inspect(s.containerId);
      // Our own stop is not a crash.
      this.update(s.appId, (r) => ({ ...r, exitKey: c ? exitKeyOf(c) ?? r.exitKey : r.exitKey, restartDue: undefined }));
    },
    remove: async (s) => {
      this.ctx.log.info('removing container', { containerId: s.containerId, appId: s.appId, reason: s.reason });
      await this.driver.stop(s.containerId, this.stopTimeout);
      await this.driver.remove(s.containerId);
    },
    recreate: async (s) => {
      await this.driver.stop(s.containerId, this.stopTimeout);
      await this.driver.remove(s.containerId);
    },
    'restart-after-backoff': (s) => this.noteExit(s, false),
    'mark-broken': (s) => this.noteExit(s, true),
    'remove-network': async (s) => {
      await this.driver.removeNetwork(s.networkId);
    },
  };

  private async noteExit(s: Extract<Step, { kind: 'restart-after-backoff' | 'mark-broken' }>, broken: boolean): Promise<void> {
    const logLines = await this.driver.lastLogLines(s.containerId, s.logsSince, 10).catch(() => []);
    this.update(s.appId, (r) => noteCrash(r, { exitKey: s.exitKey, exitCode: s.exitCode, finishedAt: s.finishedAt, logLines }, Date.now(), this.limits, broken));
    const level = broken ? 'warn' : 'info';
    this.ctx.log[level](broken ? 'container keeps exiting; left BROKEN' : 'container exited; restarting after backoff', {
      appId: s.appId, exitCode: s.exitCode, restartDue: this.records.get(s.appId)?.restartDue,
    });
  }
}
