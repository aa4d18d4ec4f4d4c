// The domainmgr planner, table-driven: configs + what the engine shows + records → steps.
import t from 'tap';
import { plan, planApp, type PlanInput } from '../../agents/domainmgr/plan';
import { noteCrash, syncRecord, type AppRecord, type Limits, type ObservedContainer } from '../../agents/domainmgr/records';
import type { DomainConfig } from '../../pubsub/collections/apps';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const limits: Limits = { crashLimit: 3, crashWindowMs: 600_000, restartBackoffMaxMs: 8000, retryMaxMs: 8000 };
const NOW = 1_000_000;

function cfg(over: Partial<DomainConfig> = {}): DomainConfig {
  return {
    appId: A, name: 'web', activate: true, imageRef: 'img:1', env: {}, ports: [], memoryMiB: 64, cpus: 1, mounts: [],
    networkInstanceIds: [], specHash: 'h1', ...over,
  };
}
function ctr(over: Partial<ObservedContainer> = {}): ObservedContainer {
  return {
    id: 'c1', name: 'zedbox-web-aaaaaaaa', appId: A, specHash: 'h1', status: 'running', running: true, exitCode: 0,
    startedAt: '2026-01-01T00:00:00Z', finishedAt: '0001-01-01T00:00:00Z', ...over,
  };
}
const exited = (over: Partial<ObservedContainer> = {}): ObservedContainer =>
  ctr({ status: 'exited', running: false, exitCode: 3, finishedAt: '2026-01-01T00:00:05Z', ...over });
function rec(over: Partial<AppRecord> = {}): AppRecord {
  return { specHash: 'h1', activate: true, crashTimes: [], restarts: 0, broken: false, ...over };
}

t.test('one app: config and container → steps', async (t) => {
  const cases: Array<[string, DomainConfig, ObservedContainer | undefined, AppRecord | undefined, string[], number?]> = [
    ['no container: create', cfg(), undefined, undefined, ['create']],
    ['running with the same spec: adopt, nothing to do', cfg(), ctr(), undefined, []],
    ['another spec: recreate', cfg({ specHash: 'h2' }), ctr(), rec({ specHash: 'h2' }), ['recreate']],
    ['created, never started: start', cfg(), ctr({ status: 'created', running: false, startedAt: '0001-01-01T00:00:00Z' }), rec(), ['start']],
    ['first exit: restart after backoff', cfg(), exited(), rec(), ['restart-after-backoff']],
    ['exit already noted, not yet due: wait', cfg(), exited(), rec({ exitKey: 'c1@2026-01-01T00:00:05Z', restartDue: NOW + 500 }), [], NOW + 500],
    ['exit already noted and due: restart', cfg(), exited(), rec({ exitKey: 'c1@2026-01-01T00:00:05Z', restartDue: NOW }), ['start']],
    ['exit of our own stop: plain start', cfg(), exited(), rec({ exitKey: 'c1@2026-01-01T00:00:05Z' }), ['start']],
    ['third exit in window with limit 3: broken', cfg(), exited(), rec({ crashTimes: [NOW - 10, NOW - 5] }), ['mark-broken']],
    ['old crashes outside the window do not count', cfg(), exited(), rec({ crashTimes: [NOW - 700_000, NOW - 650_000] }), ['restart-after-backoff']],
    ['broken: nothing more', cfg(), exited(), rec({ exitKey: 'c1@2026-01-01T00:00:05Z', broken: true }), []],
    ['failed create, retry not due: wait', cfg(), undefined, rec({ failure: { action: 'create', message: 'x', count: 1, firstAt: NOW, retryAt: NOW + 1000 } }), [], NOW + 1000],
    ['failed create, retry due: create', cfg(), undefined, rec({ failure: { action: 'create', message: 'x', count: 1, firstAt: NOW - 2000, retryAt: NOW } }), ['create']],
    ['inactive and running: stop', cfg({ activate: false }), ctr(), rec({ activate: false }), ['stop']],
    ['inactive and stopped: nothing (container kept)', cfg({ activate: false }), exited(), rec({ activate: false }), []],
    ['inactive, no container: nothing', cfg({ activate: false }), undefined, undefined, []],
  ];
  for (const [name, c, o, r, kinds, wake] of cases) {
    const p = planApp(c, o, r, NOW, limits);
    t.same(p.steps.map((s) => s.kind), kinds, name);
    if (wake !== undefined) t.equal(p.wakeAt, wake, `${name}: wakes when due`);
  }
});

function input(over: Partial<PlanInput>): PlanInput {
  return { configs: new Map(), containers: [], networks: [], neededNetworks: new Set(), records: new Map(), now: NOW, limits, mayRemove: true, configuredApps: new Set(), ...over };
}

t.test('containers no config names are removed only once removal is allowed', async (t) => {
  const orphan = ctr({ id: 'c9', appId: B });
  const unnamed = ctr({ id: 'c8', appId: undefined });
  const held = plan(input({ containers: [orphan, unnamed], mayRemove: false }));
  t.same(held.steps, [], 'nothing removed before DomainConfig is complete');
  const now = plan(input({ containers: [orphan, unnamed] }));
  t.same(now.steps.map((s) => [s.kind, 'containerId' in s && s.containerId]), [['remove', 'c9'], ['remove', 'c8']]);
  const kept = plan(input({ containers: [orphan, unnamed], configuredApps: new Set([B]) }));
  t.same(kept.steps.map((s) => 'containerId' in s && s.containerId), ['c8'],
    'the container of an app the device config still names waits for its DomainConfig (adopted after a restart)');
});

t.test('a second container for one app is removed, the right one kept', async (t) => {
  const stale = ctr({ id: 'old', specHash: 'h0', running: false, status: 'exited' });
  const good = ctr({ id: 'new' });
  const p = plan(input({ configs: new Map([[A, cfg()]]), containers: [stale, good] }));
  t.same(p.steps.map((s) => [s.kind, 'containerId' in s && s.containerId]), [['remove', 'old']]);
});

t.test('networks no config needs are removed, needed ones kept', async (t) => {
  const p = plan(input({ networks: [{ id: 'n1', name: 'zedbox-x-lan' }, { id: 'n2', name: 'zedbox-x-old' }], neededNetworks: new Set(['zedbox-x-lan']) }));
  t.same(p.steps, [{ kind: 'remove-network', networkId: 'n2', name: 'zedbox-x-old' }]);
  t.same(plan(input({ networks: [{ id: 'n2', name: 'zedbox-x-old' }], mayRemove: false })).steps, []);
});

t.test('a crash loop: re-planning on the simulated engine reaches BROKEN after the limit', async (t) => {
  let r = syncRecord(undefined, cfg(), undefined);
  let now = NOW;
  const delays: number[] = [];
  for (let exit = 1; exit <= 3; exit++) {
    const c = exited({ finishedAt: `2026-01-01T00:00:0${exit}Z` });
    const [step] = planApp(cfg(), c, r, now, limits).steps;
    t.equal(step?.kind, exit < 3 ? 'restart-after-backoff' : 'mark-broken', `exit ${exit}`);
    r = noteCrash(r, { exitKey: `c1@${c.finishedAt}`, exitCode: 3, finishedAt: c.finishedAt, logLines: ['dying'] }, now, limits, step?.kind === 'mark-broken');
    if (r.restartDue !== undefined) delays.push(r.restartDue - now);
    now += 100;
  }
  t.same(delays, [1000, 2000], 'backoff doubles from 1 s');
  t.equal(r.broken, true);
  t.same(planApp(cfg(), exited({ finishedAt: '2026-01-01T00:00:03Z' }), r, now, limits).steps, [], 'broken: not restarted');
  const again = syncRecord(syncRecord(r, cfg({ activate: false }), undefined), cfg(), exited({ finishedAt: '2026-01-01T00:00:03Z' }));
  t.equal(again.broken, false, 'deactivate then activate resets the crash record');
  t.same(planApp(cfg(), exited({ finishedAt: '2026-01-01T00:00:03Z' }), again, now, limits).steps.map((s) => s.kind), ['start'], 'and starts at once');
  t.equal(syncRecord(r, cfg({ specHash: 'h2' }), undefined).broken, false, 'a new specHash resets it too');
});

t.test('backoff is capped at app.restart.backoff.max', async (t) => {
  let r = rec();
  for (let i = 0; i < 6; i++) r = noteCrash(r, { exitKey: `k${i}`, exitCode: 1, finishedAt: 'x', logLines: [] }, NOW, { ...limits, crashLimit: 100 }, false);
  t.equal(r.restartDue! - NOW, 8000);
});

t.test("an exit step reads only the last run's output: from midway between the previous exit and the last start", async (t) => {
  const [first] = planApp(cfg(), exited(), rec(), NOW, limits).steps;
  t.notOk(first && 'logsSince' in first, 'first exit: all output');
  const c = exited({ startedAt: '2026-01-01T00:00:07Z', finishedAt: '2026-01-01T00:00:09Z' });
  const [second] = planApp(cfg(), c, rec({ exitKey: 'c1@2026-01-01T00:00:05.5Z' }), NOW, limits).steps;
  t.match(second, { kind: 'restart-after-backoff', logsSince: '2026-01-01T00:00:06.250Z' });
  const [other] = planApp(cfg(), c, rec({ exitKey: 'c0@2026-01-01T00:00:01Z' }), NOW, limits).steps;
  t.notOk(other && 'logsSince' in other, "another container's exit is not this one's");
});
