// EVE's app-instance state machine as one pure function: given an app's config,
// its persisted counters, what zedmanager published for it last time and what
// volumemgr and domainmgr report, it returns the app's status, the volume refs
// and container to ask for, and the counters to persist. No I/O, no clock.
import { minState, stateOrder, type SwState } from '../../pubsub/collections/common';
import type { AppInstanceConfig } from '../../pubsub/collections/config';
import type { AppCounters, AppInstanceStatus, DomainConfig, DomainStatus } from '../../pubsub/collections/apps';
import { volumeRefKey, type VolumeRefConfig, type VolumeRefStatus } from '../../pubsub/collections/volumes';
import { gatherErrors, mostSevere } from './app-errors';
import { domainSpec, type RefInstance } from './domain-spec';

export type Inprogress = AppInstanceStatus['restartInprogress'];

export interface AppInputs {
  config: Readonly<AppInstanceConfig>;
  /** Persisted AppCounters (undefined for an app seen for the first time). */
  counters?: Readonly<AppCounters>;
  /** What the previous plan returned (undefined after zedmanager's process started). */
  previous?: Readonly<AppInstanceStatus>;
  /** This app's VolumeRefStatus values, keyed by volumeRefKey. */
  volumeRefs: ReadonlyMap<string, Readonly<VolumeRefStatus>>;
  domain?: Readonly<DomainStatus>;
  /** RFC 3339, for the time of errors first seen now. */
  now: string;
}

export interface AppPlan {
  status: AppInstanceStatus;
  volumeRefConfigs: VolumeRefConfig[];
  domainConfig?: DomainConfig;
  counters: AppCounters;
}

const LOADED = stateOrder('LOADED');
const CREATED = stateOrder('CREATED_VOLUME');

interface Phase { restart: Inprogress; purge: Inprogress; counters: AppCounters; retiring?: RefInstance[] }

export function planApp(inp: AppInputs): AppPlan {
  const cfg = inp.config;
  let phase = startPhase(inp);
  // Each step may complete a phase; the next may then complete too (at most a few).
  for (let i = 0; i < 6; i++) {
    const next = advance(inp, phase);
    if (next === phase) break;
    phase = next;
  }
  const refs = desiredRefs(cfg, targetGeneration(cfg, phase));
  const statusOf = (r: RefInstance) => inp.volumeRefs.get(volumeRefKey({ ...r, appId: cfg.id }));
  const volumeRefConfigs = refConfigs(cfg, refs, phase, statusOf, inp.domain !== undefined);
  const serving = servingRefs(refs, phase);
  const spec = domainSpec(cfg, serving, statusOf);
  const domainConfig = spec.ok ? { ...spec.domain, activate: domainActive(cfg, phase) } : undefined;
  const own = !spec.ok && allCreated(serving, statusOf) ? [spec.reason] : [];
  const ds = inp.domain && domainConfig && inp.domain.specHash === domainConfig.specHash ? inp.domain : undefined;
  const errors = gatherErrors({
    configErrors: cfg.errors ?? [],
    volumeRefs: [...refs, ...(phase.retiring ?? [])].map(statusOf).filter((s): s is VolumeRefStatus => !!s),
    domain: inp.domain, own, previous: inp.previous?.errors ?? [], now: inp.now,
  });
  const error = mostSevere(errors);
  const status: AppInstanceStatus = {
    appId: cfg.id, name: cfg.name, ...(cfg.version !== undefined ? { version: cfg.version } : {}),
    configVersion: cfg.configVersion,
    state: appState(cfg, refs, statusOf, domainConfig, ds, inp.domain),
    activated: !!(ds?.activated && domainConfig?.activate),
    restartInprogress: phase.restart, purgeInprogress: phase.purge,
    ...(phase.counters.restartCounter !== undefined ? { restartCounter: phase.counters.restartCounter } : {}),
    ...(phase.counters.purgeCounter !== undefined ? { purgeCounter: phase.counters.purgeCounter } : {}),
    localGeneration: phase.counters.localGeneration,
    volumes: refs.map((r) => appVolume(r, statusOf(r))),
    ...(phase.retiring ? { retiringVolumes: phase.retiring.map((r) => appVolume(r, statusOf(r))) } : {}),
    ...(inp.domain?.containerId ? { containerId: inp.domain.containerId } : {}),
    restarts: inp.domain?.restarts ?? 0,
    ...(inp.domain?.lastExitCode !== undefined ? { lastExitCode: inp.domain.lastExitCode } : {}),
    ...(inp.domain?.startedAt ? { bootTime: inp.domain.startedAt } : {}),
    ...(error ? { error } : {}),
    errors,
  };
  return { status, volumeRefConfigs, ...(domainConfig ? { domainConfig } : {}), counters: phase.counters };
}

/** Counters with baselines filled in, and what was in progress (or starts now). */
function startPhase(inp: AppInputs): Phase {
  const cfg = inp.config;
  const stored = inp.counters;
  // The first value seen is a baseline: recorded, never acted on (EVE §4.4).
  const counters: AppCounters = {
    appId: cfg.id,
    localGeneration: stored?.localGeneration ?? 0,
    ...defined('restartCounter', stored?.restartCounter ?? cfg.restartCounter),
    ...defined('purgeCounter', stored?.purgeCounter ?? cfg.purgeCounter),
  };
  const prev = inp.previous;
  let phase: Phase = {
    restart: prev?.restartInprogress ?? 'none',
    purge: prev?.purgeInprogress ?? 'none',
    counters,
    ...(prev?.retiringVolumes ? { retiring: prev.retiringVolumes.map(refOfVolume) } : {}),
  };
  if (phase.purge === 'none') phase = maybeStartPurge(inp, phase);
  if (phase.purge !== 'none') phase = { ...phase, restart: 'none' }; // a purge restarts the app anyway
  if (cfg.restartCounter !== undefined && cfg.restartCounter !== phase.counters.restartCounter) {
    // Recorded at once, so however much it grew it restarts once; absorbed by a purge
    // (which restarts anyway) and only recorded on an app that is not running.
    // A container that exists (running, or BROKEN after a crash loop) is restarted: that is how EVE recovers a broken app.
    const running = cfg.activate && (prev?.activated === true || inp.domain !== undefined);
    if (running && phase.restart === 'none' && phase.purge === 'none') phase = { ...phase, restart: 'bring-down' };
    phase = { ...phase, counters: { ...phase.counters, restartCounter: cfg.restartCounter } };
  }
  return phase;
}

/** A purge counter that moved, or (without one) a change of the app's volumes once it had a container. */
function maybeStartPurge(inp: AppInputs, phase: Phase): Phase {
  const cfg = inp.config;
  const purgeAsked = cfg.purgeCounter !== undefined && cfg.purgeCounter !== phase.counters.purgeCounter;
  const prev = inp.previous;
  const current = prev?.volumes.map(refOfVolume) ?? desiredRefs(cfg, phase.counters.localGeneration);
  if (purgeAsked) return { ...phase, purge: 'download-and-verify', retiring: current };
  const hadContainer = prev !== undefined && stateOrder(prev.state) >= stateOrder('INSTALLED');
  const wanted = desiredRefs(cfg, phase.counters.localGeneration);
  if (hadContainer && !sameRefs(current, wanted)) return { ...phase, purge: 'download-and-verify', retiring: current };
  return phase;
}

/** One step of whatever is in progress, or the same phase when it must wait. */
function advance(inp: AppInputs, phase: Phase): Phase {
  const cfg = inp.config;
  const statusOf = (r: RefInstance) => inp.volumeRefs.get(volumeRefKey({ ...r, appId: cfg.id }));
  const ds = inp.domain;
  const halted = !ds || ds.state === 'HALTED' || (!ds.activated && stateOrder(ds.state) < stateOrder('BOOTING'));
  const refs = desiredRefs(cfg, targetGeneration(cfg, phase));
  switch (phase.purge) {
    case 'download-and-verify': {
      const fresh = refs.filter((r) => !phase.retiring?.some((o) => sameRef(o, r)));
      return fresh.every((r) => atLeast(statusOf(r), LOADED)) ? { ...phase, purge: 'bring-down' } : phase;
    }
    case 'bring-down': {
      if (!halted) return phase;
      // Persisted only now, so a reboot before this point purges again from the start.
      const counters = cfg.purgeCounter !== undefined && cfg.purgeCounter !== phase.counters.purgeCounter
        ? { ...phase.counters, purgeCounter: cfg.purgeCounter, localGeneration: phase.counters.localGeneration + 1 }
        : phase.counters;
      return { ...phase, purge: 'recreate-volumes', counters };
    }
    case 'recreate-volumes':
      return allCreated(refs, statusOf) ? { ...phase, purge: 'bring-up' } : phase;
    case 'bring-up': {
      const spec = domainSpec(cfg, refs, statusOf);
      const up = !cfg.activate || (spec.ok && ds?.state === 'RUNNING' && ds.specHash === spec.domain.specHash);
      if (!up) return phase;
      const { retiring: _dropped, ...rest } = phase;
      return { ...rest, purge: 'none' };
    }
    default:
      break;
  }
  if (phase.restart === 'bring-down') return halted ? { ...phase, restart: 'bring-up' } : phase;
  if (phase.restart === 'bring-up') {
    const spec = domainSpec(cfg, refs, statusOf);
    const up = !cfg.activate || (spec.ok && ds?.state === 'RUNNING' && ds.activated && ds.specHash === spec.domain.specHash);
    return up ? { ...phase, restart: 'none' } : phase;
  }
  return phase;
}

/** The localGeneration of the instances being installed: the next one while a purge has not yet been persisted. */
function targetGeneration(cfg: AppInstanceConfig, phase: Phase): number {
  const early = phase.purge === 'download-and-verify' || phase.purge === 'bring-down';
  const counterPurge = cfg.purgeCounter !== undefined && cfg.purgeCounter !== phase.counters.purgeCounter;
  return phase.counters.localGeneration + (early && counterPurge ? 1 : 0);
}

function desiredRefs(cfg: AppInstanceConfig, localGeneration: number): RefInstance[] {
  return cfg.volumeRefs.map((r) => ({
    volumeId: r.volumeId, generation: r.generation, localGeneration, ...(r.mountDir ? { mountDir: r.mountDir } : {}),
  }));
}

/** The refs the container is built from: the old ones until a purge has recreated the new. */
function servingRefs(refs: RefInstance[], phase: Phase): RefInstance[] {
  const old = phase.purge === 'download-and-verify' || phase.purge === 'bring-down' || phase.purge === 'recreate-volumes';
  return old && phase.retiring ? phase.retiring : refs;
}

function refConfigs(
  cfg: AppInstanceConfig, refs: RefInstance[], phase: Phase, statusOf: (r: RefInstance) => VolumeRefStatus | undefined, hasDomain: boolean,
): VolumeRefConfig[] {
  const out = new Map<string, VolumeRefConfig>();
  const retiring = phase.retiring ?? [];
  // The old instances stay created while a container may use them; for an app that never had
  // a container (no domain, nothing created) they are not created now.
  const created = (s: VolumeRefStatus | undefined) => !!s && (!s.verifyOnly || stateOrder(s.state) >= stateOrder('CREATING_VOLUME'));
  const keepOld = hasDomain || retiring.some((r) => created(statusOf(r)));
  for (const r of retiring) out.set(volumeRefKey({ ...r, appId: cfg.id }), vrc(cfg.id, r, !keepOld));
  const holdNew = phase.purge === 'download-and-verify' || phase.purge === 'bring-down';
  for (const r of refs) {
    const key = volumeRefKey({ ...r, appId: cfg.id });
    if (out.has(key)) continue; // shared by old and new: already created, in use
    const s = statusOf(r);
    // verifyOnly until LOADED (EVE doInstall); during a purge until the old container is down.
    const create = !holdNew && !!s && (!s.verifyOnly || stateOrder(s.state) >= LOADED);
    out.set(key, vrc(cfg.id, r, !create));
  }
  return [...out.values()];
}

function vrc(appId: string, r: RefInstance, verifyOnly: boolean): VolumeRefConfig {
  return { appId, volumeId: r.volumeId, generation: r.generation, localGeneration: r.localGeneration, verifyOnly, ...(r.mountDir ? { mountDir: r.mountDir } : {}) };
}

function domainActive(cfg: AppInstanceConfig, phase: Phase): boolean {
  if (!cfg.activate) return false;
  if (phase.restart === 'bring-down') return false;
  return !(phase.purge === 'bring-down' || phase.purge === 'recreate-volumes');
}

function appState(
  cfg: AppInstanceConfig, refs: RefInstance[], statusOf: (r: RefInstance) => VolumeRefStatus | undefined,
  dc: DomainConfig | undefined, matching: DomainStatus | undefined, anyDomain: DomainStatus | undefined,
): SwState {
  if (!dc) return installingState(refs, statusOf);
  if (matching && matching.state !== 'INITIAL') return matching.state;
  if (!cfg.activate) return anyDomain && anyDomain.state !== 'HALTED' ? 'HALTING' : 'HALTED';
  return 'INSTALLED'; // below BOOTING until the domain reports
}

function installingState(refs: RefInstance[], statusOf: (r: RefInstance) => VolumeRefStatus | undefined): SwState {
  const s = minState(refs.map((r) => statusOf(r)?.state ?? 'INITIAL'));
  // Volumes done but no container spec yet (an error says why): not further than CREATED_VOLUME.
  return stateOrder(s) > CREATED ? 'CREATED_VOLUME' : s;
}

function allCreated(refs: RefInstance[], statusOf: (r: RefInstance) => VolumeRefStatus | undefined): boolean {
  return refs.every((r) => atLeast(statusOf(r), CREATED));
}

function atLeast(s: VolumeRefStatus | undefined, order: number): boolean {
  return !!s && stateOrder(s.state) >= order;
}

function appVolume(r: RefInstance, s: VolumeRefStatus | undefined): AppInstanceStatus['volumes'][number] {
  return {
    volumeId: r.volumeId, generation: r.generation, localGeneration: r.localGeneration,
    ...(r.mountDir ? { mountDir: r.mountDir } : {}), state: s?.state ?? 'INITIAL',
    ...(s?.currentBytes !== undefined ? { currentBytes: s.currentBytes } : {}),
    ...(s?.totalBytes !== undefined ? { totalBytes: s.totalBytes } : {}),
  };
}

function refOfVolume(v: { volumeId: string; generation: number; localGeneration: number; mountDir?: string }): RefInstance {
  return { volumeId: v.volumeId, generation: v.generation, localGeneration: v.localGeneration, ...(v.mountDir ? { mountDir: v.mountDir } : {}) };
}

function sameRef(a: RefInstance, b: RefInstance): boolean {
  return a.volumeId === b.volumeId && a.generation === b.generation && a.localGeneration === b.localGeneration;
}

function sameRefs(a: RefInstance[], b: RefInstance[]): boolean {
  return a.length === b.length && a.every((r, i) => { const o = b[i]; return !!o && sameRef(r, o); });
}

function defined<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}
