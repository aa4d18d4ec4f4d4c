// zedmanager's effects: it reads its inputs from the bus, runs the planner for
// every app and publishes the difference. Every input change schedules one
// reconcile pass (coalesced), so a burst of updates costs one pass.
import type { AgentContext } from '../agent';
import {
  AppCountersCollection, AppInstanceConfigCollection, AppInstanceStatusCollection, AppInstanceSummaryCollection,
  ConfigItemValueMapCollection, DomainConfigCollection, stateOrder, DomainStatusCollection, VolumeRefConfigCollection,
  VolumeRefStatusCollection, volumeRefKey, type VolumeRefConfig, type VolumeRefStatus,
} from '../../pubsub/collections';
import { summarize } from './app-errors';
import { planApp, type AppPlan } from './app-plan';

/** How long DomainConfig waits for volumemgr to report every app's volumes before it signals restarted anyway. */
export const DOMAIN_RESTARTED_GRACE_MS = 30_000;

export class AppDriver {
  private readonly vrcPub;
  private readonly domainPub;
  private readonly statusPub;
  private readonly summaryPub;
  private readonly countersPub;
  private readonly configs;
  private readonly volumeRefs;
  private readonly domains;
  private scheduled = false;
  private vrcRestarted = false;
  private domainRestarted = false;
  private readySince: number | undefined;
  private graceTimer = false;

  constructor(private readonly ctx: AgentContext) {
    this.vrcPub = ctx.publish(VolumeRefConfigCollection);
    this.domainPub = ctx.publish(DomainConfigCollection);
    this.statusPub = ctx.publish(AppInstanceStatusCollection);
    this.summaryPub = ctx.publish(AppInstanceSummaryCollection);
    this.countersPub = ctx.publish(AppCountersCollection);
    const changed = { create: () => this.schedule(), modify: () => this.schedule(), delete: () => this.schedule(), synchronized: () => this.schedule(), restarted: () => this.schedule() };
    this.configs = ctx.subscribe(AppInstanceConfigCollection, changed);
    this.volumeRefs = ctx.subscribe(VolumeRefStatusCollection, changed);
    this.domains = ctx.subscribe(DomainStatusCollection, changed);
    // No config item steers zedmanager yet; subscribed so one can without new wiring.
    ctx.subscribe(ConfigItemValueMapCollection, {});
  }

  schedule(): void {
    if (this.scheduled || this.ctx.signal.aborted) return;
    this.scheduled = true;
    this.ctx.setTimeout(() => {
      this.scheduled = false;
      this.reconcile();
    }, 0);
  }

  /** Inputs complete: zedagent applied its first config, volumemgr and domainmgr answered. */
  private ready(): boolean {
    return this.configs.restarted && this.volumeRefs.synchronized && this.domains.synchronized;
  }

  reconcile(): void {
    if (!this.ready()) return;
    this.readySince ??= Date.now();
    const now = new Date().toISOString();
    const byApp = groupByApp(this.volumeRefs.getAll());
    const wantedRefs = new Map<string, VolumeRefConfig>();
    let allSettled = true;
    for (const [appId, config] of this.configs.getAll()) {
      const refs = byApp.get(appId) ?? new Map<string, VolumeRefStatus>();
      const plan = planApp({
        config, counters: this.countersPub.get(appId), previous: this.statusPub.get(appId),
        volumeRefs: refs, domain: this.domains.get(appId), now,
      });
      for (const v of plan.volumeRefConfigs) wantedRefs.set(volumeRefKey(v), v);
      if (!settled(plan, refs)) allSettled = false;
      this.countersPub.publish(appId, plan.counters); // persisted only when it changed
      if (plan.domainConfig) this.domainPub.publish(appId, plan.domainConfig);
      else if (this.domainPub.get(appId)) this.domainPub.unpublish(appId);
      this.statusPub.publish(appId, plan.status);
    }
    // New refs before old ones go, so a shared volume never drops to refcount 0.
    for (const [key, v] of wantedRefs) this.vrcPub.publish(key, v);
    for (const key of this.vrcPub.keys()) if (!wantedRefs.has(key)) this.vrcPub.unpublish(key);
    this.removeDeleted();
    this.summaryPub.publish('global', summarize(this.statusPub.getAll().values()));
    this.signalRestarted(allSettled);
  }

  /** Apps whose config is gone: container, status and counters go too (volumes follow their refs). */
  private removeDeleted(): void {
    const live = (id: string) => this.configs.get(id) !== undefined;
    for (const id of this.domainPub.keys()) if (!live(id)) this.domainPub.unpublish(id);
    for (const id of this.statusPub.keys()) if (!live(id)) this.statusPub.unpublish(id);
    for (const id of this.countersPub.keys()) if (!live(id)) this.countersPub.unpublish(id);
  }

  /**
   * VolumeRefConfig is complete after the first pass. DomainConfig only once every app is settled
   * (see settled()) or after a grace period: domainmgr removes containers no DomainConfig names.
   */
  private signalRestarted(allSettled: boolean): void {
    if (!this.vrcRestarted) {
      this.vrcRestarted = true;
      this.vrcPub.signalRestarted();
    }
    if (this.domainRestarted) return;
    const waited = Date.now() - (this.readySince ?? Date.now());
    if (allSettled || waited >= DOMAIN_RESTARTED_GRACE_MS) {
      this.domainRestarted = true;
      this.domainPub.signalRestarted();
      this.statusPub.signalRestarted();
    } else if (!this.graceTimer) {
      this.graceTimer = true;
      this.ctx.setTimeout(() => this.schedule(), DOMAIN_RESTARTED_GRACE_MS - waited);
    }
  }
}

/**
 * Whether volumemgr has said enough about an app to know its container: it has one, or every
 * ref is reported and one failed or is still far from done (no container can exist for it yet).
 */
function settled(plan: AppPlan, refs: ReadonlyMap<string, Readonly<VolumeRefStatus>>): boolean {
  if (plan.domainConfig) return true;
  const reported = plan.volumeRefConfigs.map((v) => refs.get(volumeRefKey(v)));
  if (reported.some((s) => s === undefined)) return false;
  return reported.some((s) => s!.error !== undefined || stateOrder(s!.state) < stateOrder('LOADED'));
}

function groupByApp(all: Map<string, Readonly<VolumeRefStatus>>): Map<string, Map<string, Readonly<VolumeRefStatus>>> {
  const out = new Map<string, Map<string, Readonly<VolumeRefStatus>>>();
  for (const [key, v] of all) {
    let m = out.get(v.appId);
    if (!m) out.set(v.appId, (m = new Map()));
    m.set(key, v);
  }
  return out;
}
