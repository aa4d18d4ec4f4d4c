// zedmanager's state machine, driven the way its neighbours would answer:
// `World` plays volumemgr (VolumeRefStatus from VolumeRefConfig) and domainmgr
// (DomainStatus from DomainConfig) by hand, so every transition is explicit.
import t from 'tap';
import { planApp, type AppPlan } from '../../agents/zedmanager/app-plan';
import { summarize } from '../../agents/zedmanager/app-errors';
import { stateOrder, type SwState, type ErrorInfo } from '../../pubsub/collections/common';
import type { AppInstanceConfig } from '../../pubsub/collections/config';
import type { AppCounters, AppInstanceStatus, DomainStatus } from '../../pubsub/collections/apps';
import { volumeRefKey, type VolumeRefStatus } from '../../pubsub/collections/volumes';

const APP = 'aaaaaaaa-0000-4000-8000-000000000001';
const ROOT = 'bbbbbbbb-0000-4000-8000-000000000001';
const DATA = 'bbbbbbbb-0000-4000-8000-000000000002';
const NOW = '2026-11-22T10:00:00.000Z';

function config(over: Partial<AppInstanceConfig> = {}): AppInstanceConfig {
  return {
    id: APP, name: 'web', activate: true, configVersion: '1',
    volumeRefs: [{ volumeId: ROOT, generation: 0 }, { volumeId: DATA, generation: 0, mountDir: '/data' }],
    resources: { memoryMiB: 64, cpus: 1 }, env: { A: '1' }, ports: [{ container: 80, host: 8080 }],
    ...over,
  };
}

class World {
  counters?: AppCounters;
  previous?: AppInstanceStatus;
  vrs = new Map<string, VolumeRefStatus>();
  domain?: DomainStatus;
  last!: AppPlan;
  constructor(public config: AppInstanceConfig) {}

  plan(): AppPlan {
    this.last = planApp({ config: this.config, counters: this.counters, previous: this.previous, volumeRefs: this.vrs, domain: this.domain, now: NOW });
    this.previous = this.last.status;
    this.counters = this.last.counters;
    return this.last;
  }

  /** volumemgr: every published ref reaches `upTo` (verifyOnly refs stop at LOADED); unpublished refs vanish. */
  volumemgr(upTo: SwState, only?: (ref: { localGeneration: number; generation: number }) => boolean): AppPlan {
    const wanted = new Set(this.last.volumeRefConfigs.map((v) => volumeRefKey(v)));
    for (const k of [...this.vrs.keys()]) if (!wanted.has(k)) this.vrs.delete(k);
    for (const v of this.last.volumeRefConfigs) {
      if (only && !only(v)) continue;
      const cap: SwState = v.verifyOnly ? 'LOADED' : 'CREATED_VOLUME';
      const state = stateOrder(upTo) < stateOrder(cap) ? upTo : cap;
      const root = v.volumeId === ROOT;
      this.vrs.set(volumeRefKey(v), {
        appId: v.appId, volumeId: v.volumeId, generation: v.generation, localGeneration: v.localGeneration,
        verifyOnly: v.verifyOnly, state, readonly: false, kind: root ? 'image' : 'directory',
        ...(root ? { imageRef: 'zedbox/web:1', imageId: 'sha256:1' } : { hostPath: `/persist/volumes/${v.volumeId}#${v.localGeneration}` }),
        ...(v.mountDir ? { mountDir: v.mountDir } : {}),
      });
    }
    return this.plan();
  }

  /** domainmgr: the container of the current DomainConfig reaches `state`. */
  domainmgr(state: SwState, extra: Partial<DomainStatus> = {}): AppPlan {
    const dc = this.last.domainConfig;
    if (!dc) throw new Error('no DomainConfig to run');
    this.domain = { appId: APP, name: dc.name, state, activated: state === 'RUNNING' || state === 'BOOTING', specHash: dc.specHash, restarts: 0, ...extra };
    return this.plan();
  }

  toRunning(): AppPlan {
    this.plan();
    this.volumemgr('LOADED');
    this.volumemgr('CREATED_VOLUME');
    return this.domainmgr('RUNNING');
  }
}

const verifyOnlyByGen = (p: AppPlan) => p.volumeRefConfigs.map((v) => `${v.volumeId === ROOT ? 'root' : 'data'}@${v.localGeneration}:${v.verifyOnly ? 'verify' : 'create'}`).sort();

t.test('install: INITIAL, then the least advanced volume, verify-only until LOADED, INSTALLED, then what the domain reports', async (t) => {
  const w = new World(config());
  let p = w.plan();
  t.equal(p.status.state, 'INITIAL');
  t.same(verifyOnlyByGen(p), ['data@0:verify', 'root@0:verify']);
  t.equal(p.domainConfig, undefined, 'no container before the volumes exist');

  p = w.volumemgr('DOWNLOADING');
  t.equal(p.status.state, 'DOWNLOADING');
  p = w.volumemgr('VERIFYING');
  t.equal(p.status.state, 'VERIFYING');
  t.same(verifyOnlyByGen(p), ['data@0:verify', 'root@0:verify'], 'still verify-only below LOADED');

  const dataKey = volumeRefKey({ appId: APP, volumeId: DATA, generation: 0, localGeneration: 0 });
  w.vrs.set(dataKey, { ...w.vrs.get(dataKey)!, state: 'LOADED' });
  p = w.plan();
  t.equal(p.status.state, 'VERIFYING', 'the least advanced volume wins');
  t.same(verifyOnlyByGen(p), ['data@0:create', 'root@0:verify'], 'each ref flips on its own once LOADED');

  p = w.volumemgr('LOADED');
  t.equal(p.status.state, 'LOADED');
  t.same(verifyOnlyByGen(p), ['data@0:create', 'root@0:create'], 'flipped once LOADED');

  p = w.volumemgr('CREATED_VOLUME');
  t.equal(p.status.state, 'INSTALLED', 'installed; no domain report yet so below BOOTING');
  t.ok(p.domainConfig);
  t.equal(p.domainConfig!.activate, true);
  t.equal(p.domainConfig!.imageRef, 'zedbox/web:1');
  t.same(p.domainConfig!.mounts, [{ hostPath: `/persist/volumes/${DATA}#0`, containerPath: '/data', readonly: false }]);
  t.same(p.domainConfig!.env, { A: '1' });
  t.same(p.domainConfig!.ports, [{ container: 80, host: 8080 }]);
  t.equal(p.status.activated, false);

  p = w.domainmgr('BOOTING');
  t.equal(p.status.state, 'BOOTING');
  p = w.domainmgr('RUNNING', { containerId: 'c1', startedAt: NOW });
  t.equal(p.status.state, 'RUNNING');
  t.equal(p.status.activated, true);
  t.equal(p.status.containerId, 'c1');
  t.equal(p.status.bootTime, NOW);

  const again = planApp({ config: w.config, counters: w.counters, previous: w.previous, volumeRefs: w.vrs, domain: w.domain, now: 'later' });
  t.same(again, p, 'planning again on the same inputs changes nothing (a fixed point)');
});

t.test('a domain running another spec does not count as RUNNING', async (t) => {
  const w = new World(config());
  w.toRunning();
  w.domain = { ...w.domain!, specHash: 'old' };
  const p = w.plan();
  t.equal(p.status.state, 'INSTALLED');
  t.equal(p.status.activated, false);
});

t.test('a spec change (env) without restart or purge: new specHash at once, nothing in progress', async (t) => {
  const w = new World(config());
  const before = w.toRunning().domainConfig!.specHash;
  w.config = config({ env: { A: '2' }, configVersion: '2' });
  const p = w.plan();
  t.not(p.domainConfig!.specHash, before, 'domainmgr will recreate the container');
  t.equal(p.status.restartInprogress, 'none');
  t.equal(p.status.purgeInprogress, 'none');
  t.equal(p.status.state, 'INSTALLED', 'the old container does not count');
  t.equal(w.domainmgr('RUNNING').status.state, 'RUNNING');
  t.equal(new World(config()).toRunning().domainConfig!.specHash, before, 'the hash depends on the spec only');
});

t.test('activate false halts without removing; true again boots', async (t) => {
  const w = new World(config());
  w.toRunning();
  w.config = config({ activate: false });
  let p = w.plan();
  t.equal(p.domainConfig!.activate, false);
  t.equal(p.volumeRefConfigs.length, 2, 'volumes are kept');
  t.equal(w.domainmgr('HALTING').status.state, 'HALTING');
  p = w.domainmgr('HALTED');
  t.equal(p.status.state, 'HALTED');
  t.equal(p.status.activated, false);
  w.config = config({ activate: true });
  p = w.plan();
  t.equal(p.domainConfig!.activate, true);
  t.equal(p.status.state, 'HALTED', 'still what domainmgr last said until it reports');
  t.equal(w.domainmgr('RUNNING').status.state, 'RUNNING');
});

t.test('an app installed inactive gets a stopped container and reads HALTED', async (t) => {
  const w = new World(config({ activate: false }));
  w.plan(); w.volumemgr('LOADED');
  const p = w.volumemgr('CREATED_VOLUME');
  t.equal(p.domainConfig!.activate, false);
  t.equal(p.status.state, 'HALTED');
});

t.test('restart counter: the first value is a baseline, a change restarts exactly once', async (t) => {
  const w = new World(config({ restartCounter: 5 }));
  let p = w.toRunning();
  t.equal(p.counters.restartCounter, 5, 'baseline recorded');
  t.equal(p.status.restartInprogress, 'none', 'no action on the baseline');

  w.config = config({ restartCounter: 9 }); // grew by four: still one restart
  p = w.plan();
  t.equal(p.status.restartInprogress, 'bring-down');
  t.equal(p.domainConfig!.activate, false);
  t.equal(p.counters.restartCounter, 9, 'recorded when the restart starts');
  p = w.domainmgr('HALTING');
  t.equal(p.status.restartInprogress, 'bring-down', 'waits for HALTED');
  p = w.domainmgr('HALTED');
  t.equal(p.status.restartInprogress, 'bring-up');
  t.equal(p.domainConfig!.activate, true);
  p = w.domainmgr('BOOTING');
  t.equal(p.status.restartInprogress, 'bring-up');
  p = w.domainmgr('RUNNING');
  t.equal(p.status.restartInprogress, 'none');
  t.equal(p.status.state, 'RUNNING');
  t.equal(w.plan().domainConfig!.activate, true, 'no second restart');
});

t.test('restart counter on a BROKEN app brings it down and up (how a crash-looping app is recovered)', async (t) => {
  const w = new World(config({ restartCounter: 1 }));
  w.toRunning();
  w.domainmgr('BROKEN', { error: { error: 'exited 5 times in 600 s', time: NOW, severity: 'error' } });
  w.config = config({ restartCounter: 2 });
  let p = w.plan();
  t.equal(p.status.restartInprogress, 'bring-down');
  t.equal(p.domainConfig!.activate, false);
  p = w.domainmgr('HALTED');
  t.equal(p.domainConfig!.activate, true);
  p = w.domainmgr('RUNNING');
  t.equal(p.status.restartInprogress, 'none');
  t.equal(p.status.error, undefined);
});

t.test('a purge before the app was ever installed does not create the old volumes', async (t) => {
  const w = new World(config({ purgeCounter: 1 }));
  w.plan();
  w.volumemgr('DOWNLOADING');
  w.config = config({ purgeCounter: 2 });
  let p = w.plan();
  t.equal(p.status.purgeInprogress, 'download-and-verify');
  t.same(verifyOnlyByGen(p), ['data@0:verify', 'data@1:verify', 'root@0:verify', 'root@1:verify']);
  t.equal(p.domainConfig, undefined);
  w.volumemgr('LOADED', (v) => v.localGeneration === 1);
  p = w.volumemgr('CREATED_VOLUME', (v) => v.localGeneration === 1);
  t.equal(p.status.purgeInprogress, 'bring-up');
  t.same(p.counters, { appId: APP, purgeCounter: 2, localGeneration: 1 });
  p = w.domainmgr('RUNNING');
  t.equal(p.status.purgeInprogress, 'none');
  t.same(verifyOnlyByGen(p), ['data@1:create', 'root@1:create']);
});

t.test('restart counter on an inactive app is only recorded', async (t) => {
  const w = new World(config({ activate: false, restartCounter: 1 }));
  w.plan(); w.volumemgr('LOADED'); w.volumemgr('CREATED_VOLUME'); w.domainmgr('HALTED');
  w.config = config({ activate: false, restartCounter: 2 });
  const p = w.plan();
  t.equal(p.status.restartInprogress, 'none');
  t.equal(p.counters.restartCounter, 2);
  w.config = config({ activate: true, restartCounter: 2 });
  t.equal(w.plan().status.restartInprogress, 'none', 'activating later does not replay it');
});

t.test('a counter seen first on an app with stored counters (zedmanager restarted) acts on the stored value', async (t) => {
  const w = new World(config({ restartCounter: 3 }));
  w.counters = { appId: APP, restartCounter: 2, localGeneration: 0 };
  w.domain = undefined;
  w.plan(); w.volumemgr('LOADED'); w.volumemgr('CREATED_VOLUME');
  const p = w.domainmgr('RUNNING');
  // The change happened while zedmanager was down and the app was not yet running: recorded only.
  t.equal(p.counters.restartCounter, 3);
});

t.test('purge: new instances verify while the old container runs, then down, recreate, up, drop the old', async (t) => {
  const w = new World(config({ purgeCounter: 1 }));
  const oldHash = w.toRunning().domainConfig!.specHash;
  w.config = config({ purgeCounter: 2 });
  let p = w.plan();
  t.equal(p.status.purgeInprogress, 'download-and-verify');
  t.same(verifyOnlyByGen(p), ['data@0:create', 'data@1:verify', 'root@0:create', 'root@1:verify']);
  t.equal(p.domainConfig!.specHash, oldHash, 'the old container keeps running');
  t.equal(p.domainConfig!.activate, true);
  t.same(p.counters, { appId: APP, purgeCounter: 1, localGeneration: 0 }, 'nothing persisted yet');
  t.equal(p.status.state, 'RUNNING');

  p = w.volumemgr('VERIFYING', (v) => v.localGeneration === 1);
  t.equal(p.status.purgeInprogress, 'download-and-verify');
  p = w.volumemgr('LOADED', (v) => v.localGeneration === 1);
  t.equal(p.status.purgeInprogress, 'bring-down');
  t.equal(p.domainConfig!.activate, false);
  t.same(verifyOnlyByGen(p), ['data@0:create', 'data@1:verify', 'root@0:create', 'root@1:verify'], 'not created while the old one runs');
  t.same(p.counters, { appId: APP, purgeCounter: 1, localGeneration: 0 });

  p = w.domainmgr('HALTED');
  t.equal(p.status.purgeInprogress, 'recreate-volumes');
  t.same(p.counters, { appId: APP, purgeCounter: 2, localGeneration: 1 }, 'persisted once the old container is down');
  t.same(verifyOnlyByGen(p), ['data@0:create', 'data@1:create', 'root@0:create', 'root@1:create']);
  t.equal(p.domainConfig!.activate, false);

  p = w.volumemgr('CREATED_VOLUME');
  t.equal(p.status.purgeInprogress, 'bring-up');
  t.not(p.domainConfig!.specHash, oldHash, 'a new container on the new volumes');
  t.equal(p.domainConfig!.mounts[0]!.hostPath, `/persist/volumes/${DATA}#1`);
  t.equal(p.domainConfig!.activate, true);

  p = w.domainmgr('RUNNING');
  t.equal(p.status.purgeInprogress, 'none');
  t.same(verifyOnlyByGen(p), ['data@1:create', 'root@1:create'], 'old instances dropped');
  t.equal(p.status.retiringVolumes, undefined);
  t.equal(p.status.localGeneration, 1);
  t.equal(p.status.state, 'RUNNING');
});

t.test('purge resumes after a reboot: counters persist only at recreate-volumes', async (t) => {
  const mid = new World(config({ purgeCounter: 2 }));
  mid.counters = { appId: APP, purgeCounter: 1, localGeneration: 0 };
  mid.domain = { appId: APP, name: 'web', state: 'RUNNING', activated: true, specHash: 'adopted', restarts: 0 }; // domainmgr adopted it
  let p = mid.plan();
  t.equal(p.status.purgeInprogress, 'download-and-verify', 'rebooted before the old container went down: purge again');
  t.same(verifyOnlyByGen(p), ['data@0:create', 'data@1:verify', 'root@0:create', 'root@1:verify']);

  const late = new World(config({ purgeCounter: 2 }));
  late.counters = { appId: APP, purgeCounter: 2, localGeneration: 1 };
  p = late.plan();
  t.equal(p.status.purgeInprogress, 'none', 'rebooted after it was persisted: just install generation 1');
  t.same(verifyOnlyByGen(p), ['data@1:verify', 'root@1:verify']);
});

t.test('purge counter baseline, and purge of an inactive app', async (t) => {
  const w = new World(config({ activate: false, purgeCounter: 7 }));
  w.plan(); w.volumemgr('LOADED'); w.volumemgr('CREATED_VOLUME'); w.domainmgr('HALTED');
  t.equal(w.last.status.purgeInprogress, 'none');
  w.config = config({ activate: false, purgeCounter: 8 });
  w.plan();
  w.volumemgr('LOADED', (v) => v.localGeneration === 1);
  t.equal(w.last.status.purgeInprogress, 'recreate-volumes', 'already halted: straight through bring-down');
  const p = w.volumemgr('CREATED_VOLUME');
  t.equal(p.status.purgeInprogress, 'none');
  t.equal(p.domainConfig!.activate, false);
  t.same(verifyOnlyByGen(p), ['data@1:create', 'root@1:create']);
});

t.test('a changed volume list without a purge switches over like a purge at the same generation', async (t) => {
  const w = new World(config());
  w.toRunning();
  w.config = config({ volumeRefs: [{ volumeId: ROOT, generation: 1 }, { volumeId: DATA, generation: 0, mountDir: '/data' }] });
  let p = w.plan();
  t.equal(p.status.purgeInprogress, 'download-and-verify');
  t.same(p.volumeRefConfigs.map((v) => `${v.volumeId === ROOT ? 'root' : 'data'}#${v.generation}:${v.verifyOnly}`).sort(), ['data#0:false', 'root#0:false', 'root#1:true']);
  p = w.volumemgr('LOADED', (v) => v.generation === 1);
  t.equal(p.status.purgeInprogress, 'bring-down');
  p = w.domainmgr('HALTED');
  t.equal(p.status.purgeInprogress, 'recreate-volumes');
  t.equal(p.counters.localGeneration, 0, 'not a purge: the generation stays');
  w.volumemgr('CREATED_VOLUME');
  p = w.domainmgr('RUNNING');
  t.equal(p.status.purgeInprogress, 'none');
  t.same(p.volumeRefConfigs.map((v) => `${v.volumeId === ROOT ? 'root' : 'data'}#${v.generation}`).sort(), ['data#0', 'root#1']);
});

t.test('errors: config, volume and domain errors gathered with their sources; the most severe is error', async (t) => {
  const w = new World(config({ errors: ['volume ref 2 names an unknown network'] }));
  w.plan();
  w.volumemgr('DOWNLOADING');
  const key = volumeRefKey({ appId: APP, volumeId: ROOT, generation: 0, localGeneration: 0 });
  const volErr: ErrorInfo = { error: 'registry said 404', time: NOW, severity: 'warning', retryCondition: 'will retry in 60 s' };
  w.vrs.set(key, { ...w.vrs.get(key)!, error: volErr });
  let p = w.plan();
  t.same(p.status.errors.map((e) => [e.source, e.severity]), [['AppInstanceConfig', 'error'], ['VolumeRefStatus', 'warning']]);
  t.same(p.status.errors[1]!.entities, [{ type: 'volume', id: ROOT }]);
  t.equal(p.status.error?.source, 'AppInstanceConfig', 'the most severe');
  t.equal(p.status.state, 'DOWNLOADING', 'an error does not stop the state machine');

  w.config = config();
  w.vrs.set(key, { ...w.vrs.get(key)!, error: undefined });
  w.volumemgr('LOADED'); w.volumemgr('CREATED_VOLUME');
  p = w.domainmgr('BROKEN', { error: { error: 'container exited 5 times', time: NOW, severity: 'error' } });
  t.same(p.status.errors.map((e) => e.source), ['DomainStatus']);
  t.same(p.status.errors[0]!.entities, [{ type: 'app', id: APP }]);
  t.equal(p.status.state, 'BROKEN');
  p = w.domainmgr('RUNNING');
  t.same(p.status.errors, [], 'cleared when its source clears it');
  t.equal(p.status.error, undefined);
});

t.test('a root volume that is not an image is zedmanager\'s own error', async (t) => {
  const w = new World(config({ volumeRefs: [{ volumeId: DATA, generation: 0 }] }));
  w.plan(); w.volumemgr('LOADED');
  const p = w.volumemgr('CREATED_VOLUME');
  t.equal(p.domainConfig, undefined);
  t.equal(p.status.state, 'CREATED_VOLUME');
  t.match(p.status.error?.error, /root disk and must be a container image/);
  t.equal(p.status.error?.source, 'zedmanager');
  t.equal(w.plan().status.error?.time, NOW, 'an unchanged error keeps its first time');
});

t.test('summary counts each app once, errors first', async (t) => {
  const base = new World(config()).plan().status;
  const s = (state: SwState, error?: ErrorInfo): AppInstanceStatus => ({ ...base, state, ...(error ? { error } : {}) });
  t.same(summarize([s('RUNNING'), s('RUNNING'), s('DOWNLOADING'), s('HALTING'), s('HALTED'), s('RUNNING', { error: 'x', time: NOW, severity: 'error' }), s('BROKEN')]),
    { total: 7, starting: 1, running: 2, stopping: 1, halted: 1, error: 2 });
});
