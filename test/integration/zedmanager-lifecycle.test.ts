// zedmanager on a real bus: the test publishes AppInstanceConfig, VolumeRefStatus
// and DomainStatus as zedagent, volumemgr and domainmgr would, and checks the
// VolumeRefConfig, DomainConfig, AppInstanceStatus and AppCounters it publishes
// through install, activate false/true, restart, purge, another app's error,
// a restart of zedmanager itself and delete.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { zedmanager } from '../../agents/zedmanager/main';
import {
  AppCountersCollection, AppInstanceConfigCollection, AppInstanceStatusCollection, AppInstanceSummaryCollection,
  DomainConfigCollection, DomainStatusCollection, VolumeRefConfigCollection, VolumeRefStatusCollection, volumeRefKey,
  type AppInstanceConfig, type DomainConfig, type SwState, type VolumeRefConfig, type VolumeRefStatus,
} from '../../pubsub/collections';
import { startAgents, type Harness } from '../lib/agent-harness';

const A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const B = 'aaaaaaaa-0000-4000-8000-00000000000b';
const ROOT = 'bbbbbbbb-0000-4000-8000-000000000001';
const DATA = 'bbbbbbbb-0000-4000-8000-000000000002';
const ROOT_B = 'bbbbbbbb-0000-4000-8000-000000000003';
const WAIT = 15_000;

function appConfig(id: string, over: Partial<AppInstanceConfig> = {}): AppInstanceConfig {
  return {
    id, name: id === A ? 'web' : 'other', activate: true, configVersion: '1',
    volumeRefs: id === A ? [{ volumeId: ROOT, generation: 0 }, { volumeId: DATA, generation: 0, mountDir: '/data' }] : [{ volumeId: ROOT_B, generation: 0 }],
    resources: { memoryMiB: 32, cpus: 0.5 }, restartCounter: 0, purgeCounter: 0, ...over,
  };
}

function refStatus(v: VolumeRefConfig, state: SwState, over: Partial<VolumeRefStatus> = {}): VolumeRefStatus {
  const image = v.volumeId !== DATA;
  return {
    appId: v.appId, volumeId: v.volumeId, generation: v.generation, localGeneration: v.localGeneration, verifyOnly: v.verifyOnly,
    state, readonly: false, kind: image ? 'image' : 'directory',
    ...(image ? { imageRef: 'zedbox-test/busybox:1', imageId: 'sha256:1' } : { hostPath: `/persist/volumes/${v.volumeId}#${v.localGeneration}` }),
    ...(v.mountDir ? { mountDir: v.mountDir } : {}), ...over,
  };
}

async function peers(h: Harness) {
  const configs = await h.publisher(AppInstanceConfigCollection);
  const refs = await h.publisher(VolumeRefStatusCollection);
  const domains = await h.publisher(DomainStatusCollection);
  const vrcs = h.watch(VolumeRefConfigCollection);
  /** volumemgr: answer every VolumeRefConfig of an app (or those `only` picks) with `state`. */
  const volumemgr = (appId: string, state: SwState, only: (v: VolumeRefConfig) => boolean = () => true) => {
    for (const v of vrcs.getAll().values()) if (v.appId === appId && only(v)) refs.publish(volumeRefKey(v), refStatus(v, state));
  };
  const domainmgr = (dc: Readonly<DomainConfig> | undefined, state: SwState) => {
    if (!dc) throw new Error('no DomainConfig');
    domains.publish(dc.appId, { appId: dc.appId, name: dc.name, state, activated: state === 'RUNNING', specHash: dc.specHash, restarts: 0 });
  };
  return { configs, refs, domains, vrcs, volumemgr, domainmgr };
}

const refsOf = (h: Harness, appId: string) =>
  [...h.watch(VolumeRefConfigCollection).getAll().values()].filter((v) => v.appId === appId)
    .map((v) => `${v.volumeId === DATA ? 'data' : 'root'}@${v.localGeneration}:${v.verifyOnly ? 'verify' : 'create'}`).sort().join(' ');

async function waitRefs(h: Harness, appId: string, want: string): Promise<void> {
  const deadline = Date.now() + WAIT;
  while (refsOf(h, appId) !== want) {
    if (Date.now() > deadline) throw new Error(`VolumeRefConfig of ${appId}: want "${want}", have "${refsOf(h, appId)}"`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('install, activate, restart, purge, errors, zedmanager restart, delete', async (t) => {
  let h = await startAgents([zedmanager]);
  t.teardown(async () => {
    await h.stop();
    fs.rmSync(path.dirname(h.dirs.run), { recursive: true, force: true });
  });
  let p = await peers(h);
  const status = (pred: (s: Readonly<import('../../pubsub/collections').AppInstanceStatus> | undefined) => boolean, what: string, id = A) =>
    h.waitFor(AppInstanceStatusCollection, id, pred, what, WAIT);
  const domain = (pred: (d: Readonly<DomainConfig> | undefined) => boolean, what: string, id = A) => h.waitFor(DomainConfigCollection, id, pred, what, WAIT);

  p.configs.publish(A, appConfig(A));
  p.configs.signalRestarted();
  await waitRefs(h, A, 'data@0:verify root@0:verify');
  t.equal((await status((s) => !!s, 'status'))?.state, 'INITIAL');

  p.volumemgr(A, 'DOWNLOADING');
  await status((s) => s?.state === 'DOWNLOADING', 'DOWNLOADING');
  p.volumemgr(A, 'LOADED');
  await waitRefs(h, A, 'data@0:create root@0:create');
  p.volumemgr(A, 'CREATED_VOLUME');
  let dc = await domain((d) => d?.activate === true, 'DomainConfig activate');
  t.equal(dc?.imageRef, 'zedbox-test/busybox:1');
  t.same(dc?.mounts, [{ hostPath: `/persist/volumes/${DATA}#0`, containerPath: '/data', readonly: false }]);
  t.equal((await status((s) => s?.state === 'INSTALLED', 'INSTALLED'))?.activated, false, 'below BOOTING until the domain reports');
  p.domainmgr(dc, 'RUNNING');
  t.equal((await status((s) => s?.state === 'RUNNING', 'RUNNING'))?.activated, true);
  const summary = await h.waitFor(AppInstanceSummaryCollection, 'global', (v) => v?.running === 1, 'summary', WAIT);
  t.same(summary, { total: 1, starting: 0, running: 1, stopping: 0, halted: 0, error: 0 });
  t.same(await h.waitFor(AppCountersCollection, A, (v) => !!v, 'counters', WAIT), { appId: A, restartCounter: 0, purgeCounter: 0, localGeneration: 0 }, 'baseline');

  // activate false, then true
  p.configs.publish(A, appConfig(A, { activate: false }));
  dc = await domain((d) => d?.activate === false, 'deactivated');
  p.domainmgr(dc, 'HALTED');
  await status((s) => s?.state === 'HALTED', 'HALTED');
  t.equal(refsOf(h, A), 'data@0:create root@0:create', 'volumes kept while halted');
  p.configs.publish(A, appConfig(A, { activate: true }));
  dc = await domain((d) => d?.activate === true, 'reactivated');
  p.domainmgr(dc, 'RUNNING');
  await status((s) => s?.state === 'RUNNING', 'RUNNING again');

  // restart counter: down, up, once
  p.configs.publish(A, appConfig(A, { restartCounter: 3 }));
  dc = await domain((d) => d?.activate === false, 'restart: bring-down');
  await status((s) => s?.restartInprogress === 'bring-down', 'restart in progress');
  p.domainmgr(dc, 'HALTED');
  dc = await domain((d) => d?.activate === true, 'restart: bring-up');
  p.domainmgr(dc, 'RUNNING');
  await status((s) => s?.state === 'RUNNING' && s.restartInprogress === 'none', 'restart done');
  t.equal((await h.waitFor(AppCountersCollection, A, (v) => v?.restartCounter === 3, 'restart counter stored', WAIT))?.localGeneration, 0);

  // purge: new instances verify while the old container runs
  const oldHash = dc!.specHash;
  p.configs.publish(A, appConfig(A, { restartCounter: 3, purgeCounter: 1 }));
  await waitRefs(h, A, 'data@0:create data@1:verify root@0:create root@1:verify');
  t.equal(h.watch(DomainConfigCollection).get(A)?.activate, true, 'old container still running');
  p.volumemgr(A, 'LOADED', (v) => v.localGeneration === 1);
  dc = await domain((d) => d?.activate === false, 'purge: bring-down');
  t.equal(h.watch(AppCountersCollection).get(A)?.purgeCounter, 0, 'not persisted before the old container is down');
  p.domainmgr(dc, 'HALTED');
  await waitRefs(h, A, 'data@0:create data@1:create root@0:create root@1:create');
  t.same(await h.waitFor(AppCountersCollection, A, (v) => v?.purgeCounter === 1, 'purge persisted', WAIT), { appId: A, restartCounter: 3, purgeCounter: 1, localGeneration: 1 });
  p.volumemgr(A, 'CREATED_VOLUME', (v) => v.localGeneration === 1);
  dc = await domain((d) => d?.activate === true && d.specHash !== oldHash, 'purge: bring-up on new volumes');
  t.equal(dc?.mounts[0]?.hostPath, `/persist/volumes/${DATA}#1`);
  p.domainmgr(dc, 'RUNNING');
  await waitRefs(h, A, 'data@1:create root@1:create');
  await status((s) => s?.state === 'RUNNING' && s.purgeInprogress === 'none', 'purge done');

  // another app fails; A is untouched
  p.configs.publish(B, appConfig(B));
  await waitRefs(h, B, 'root@0:verify');
  const bRef = h.watch(VolumeRefConfigCollection).get(volumeRefKey({ appId: B, volumeId: ROOT_B, generation: 0, localGeneration: 0 }))!;
  p.refs.publish(volumeRefKey(bRef), refStatus(bRef, 'DOWNLOADING', { error: { error: 'manifest unknown', time: new Date().toISOString(), severity: 'error', entities: [{ type: 'contentTree', id: 'x' }] } }));
  const bStatus = await status((s) => !!s?.error, 'B error', B);
  t.equal(bStatus?.error?.source, 'VolumeRefStatus');
  t.same(bStatus?.error?.entities, [{ type: 'contentTree', id: 'x' }, { type: 'volume', id: ROOT_B }]);
  t.equal(h.watch(AppInstanceStatusCollection).get(A)?.state, 'RUNNING');
  await h.waitFor(AppInstanceSummaryCollection, 'global', (v) => v?.error === 1 && v.running === 1, 'summary with an error', WAIT);

  // zedmanager's process restarts (kill -9 of zedbox): the peers republish what they hold.
  const held = { a: h.watch(AppInstanceConfigCollection).get(A)!, refs: [...h.watch(VolumeRefStatusCollection).getAll()], ds: h.watch(DomainStatusCollection).get(A)! };
  const runningHash = dc!.specHash;
  const dirs = h.dirs;
  await h.stop();
  h = await startAgents([zedmanager], { dirs });
  p = await peers(h);
  for (const [k, v] of held.refs) if (v.appId === A) p.refs.publish(k, v);
  p.domains.publish(A, held.ds);
  p.configs.publish(A, held.a);
  p.configs.signalRestarted();
  dc = await domain((d) => !!d, 'DomainConfig after restart');
  t.equal(dc?.activate, true, 'activate never flipped');
  t.equal(dc?.specHash, runningHash, 'same container: domainmgr leaves it running');
  t.equal((await status((s) => !!s, 'status after restart'))?.state, 'RUNNING');
  await waitRefs(h, A, 'data@1:create root@1:create');
  const doms = h.watch(DomainConfigCollection);
  await h.waitFor(DomainConfigCollection, A, () => doms.restarted, 'DomainConfig restarted once every ref was reported', WAIT);

  // delete
  p.configs.unpublish(A);
  await domain((d) => d === undefined, 'DomainConfig gone');
  await status((s) => s === undefined, 'status gone');
  await waitRefs(h, A, '');
  await h.waitFor(AppCountersCollection, A, (v) => v === undefined, 'counters gone', WAIT);
  t.notOk(fs.existsSync(path.join(dirs.persist, 'status', 'zedmanager', 'AppCounters', `${A}.json`)), 'counters file removed');
});
