// The downloader's planner and its pure helpers, without I/O.
import t from 'tap';
import { ADOPT_RETRY, afterFailure, nextWake, planDownloads, retryCondition, type Job, type Published, type Step } from '../../agents/downloader/planner';
import { parseReference, sourceFor, MANIFEST_ACCEPT } from '../../agents/downloader/sources';
import type { DownloaderConfig } from '../../pubsub/collections';

const D = (n: number): string => 'sha256:' + String(n).padStart(64, '0');
const cfg = (n: number, extra: Partial<DownloaderConfig> = {}): DownloaderConfig => ({
  digest: D(n), kind: 'http', datastoreIds: ['11111111-1111-1111-1111-111111111111'], name: `f${n}`, refCount: 1, retry: 0, ...extra,
});
const job = (phase: Job['phase'], seq: number, extra: Partial<Job> = {}): Job => ({ phase, retry: 0, seq, failures: 0, ...extra });

function plan(configs: DownloaderConfig[], jobs: Array<[number, Job]>, opts: { now?: number; max?: number; published?: Array<[number, Published]> } = {}): Step[] {
  const published = new Map((opts.published ?? jobs.map(([n]) => [n, { refCount: 1, retry: 0 }] as [number, Published])).map(([n, p]) => [D(n), p]));
  return planDownloads({
    configs: new Map(configs.map((c) => [c.digest, c])), jobs: new Map(jobs.map(([n, j]) => [D(n), j])),
    published, now: opts.now ?? 1000, maxConcurrent: opts.max ?? 3,
  });
}

t.test('new configs are queued; queued jobs start in order up to the limit', async (t) => {
  t.same(plan([cfg(1)], []), [{ action: 'enqueue', digest: D(1) }]);
  const steps = plan([cfg(1), cfg(2), cfg(3), cfg(4)], [[4, job('queued', 0)], [3, job('queued', 1)], [2, job('queued', 2)], [1, job('queued', 3)]], { max: 2 });
  t.same(steps, [{ action: 'start', digest: D(4) }, { action: 'start', digest: D(3) }], 'oldest first, two slots');
  t.same(plan([cfg(1), cfg(2)], [[1, job('running', 0)], [2, job('queued', 1)]], { max: 1 }), [], 'no free slot');
});

t.test('failed jobs start again only when due', async (t) => {
  const jobs: Array<[number, Job]> = [[1, job('failed', 0, { failures: 1, nextAttemptAt: 2000 })]];
  t.same(plan([cfg(1)], jobs, { now: 1999 }), []);
  t.same(plan([cfg(1)], jobs, { now: 2000 }), [{ action: 'start', digest: D(1) }]);
  t.equal(nextWake(new Map(jobs.map(([n, j]) => [D(n), j]))), 2000);
});

t.test('refCount 0 deletes once; a vanished config is forgotten, a file found at start-up kept', async (t) => {
  t.same(plan([cfg(1, { refCount: 0 })], [[1, job('running', 0)]]), [{ action: 'delete', digest: D(1) }]);
  t.same(plan([cfg(1, { refCount: 0 })], []), [{ action: 'delete', digest: D(1) }], 'a file may be on disk without a job');
  t.same(plan([cfg(1, { refCount: 0 })], [[1, job('deleted', 0)]]), [], 'already deleted');
  t.same(plan([], [[1, job('running', 0)], [2, job('downloaded', 1)], [3, job('downloaded', 2, { retry: ADOPT_RETRY })]]),
    [{ action: 'forget', digest: D(1) }, { action: 'forget', digest: D(2) }]);
});

t.test('a retry bump refetches; a refCount change republishes; a file found at start adopts the retry', async (t) => {
  t.same(plan([cfg(1, { retry: 1 })], [[1, job('downloaded', 0)]]), [{ action: 'refetch', digest: D(1) }]);
  t.same(plan([cfg(1, { refCount: 2 })], [[1, job('downloaded', 0)]]), [{ action: 'refcount', digest: D(1) }]);
  t.same(plan([cfg(1, { retry: 3 })], [[1, job('downloaded', 0, { retry: ADOPT_RETRY })]], { published: [[1, { refCount: 0, retry: 0 }]] }),
    [{ action: 'refcount', digest: D(1) }], 'no refetch of a file found at start-up');
  t.same(plan([cfg(1)], [[1, job('downloaded', 0)]]), [], 'nothing to do');
});

t.test('a refetched or re-enqueued job does not start in the same round', async (t) => {
  const steps = plan([cfg(1, { retry: 1 }), cfg(2)], [[1, job('running', 0)], [2, job('queued', 1)]], { max: 1 });
  t.same(steps, [{ action: 'refetch', digest: D(1) }, { action: 'start', digest: D(2) }], 'the slot freed by the refetch goes to the next');
});

t.test('backoff doubles from 1 s up to the cap; retry condition text', async (t) => {
  const policy = { minMs: 1000, maxMs: 4000, jitter: 0 };
  let j = job('running', 0);
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    j = afterFailure(j, 0, policy);
    delays.push(j.nextAttemptAt as number);
  }
  t.same(delays, [1000, 2000, 4000, 4000]);
  t.equal(j.failures, 4);
  t.equal(retryCondition(4000, 3), 'will retry in 4 s; retried 3 times');
});

t.test('sources and references', async (t) => {
  const ds = { id: '11111111-1111-1111-1111-111111111111', type: 'registry' as const, url: 'http://r:5000/' };
  t.same(sourceFor({ kind: 'oci-manifest', name: 'a/b', digest: D(1) }, ds), { url: `http://r:5000/v2/a/b/manifests/${D(1)}`, headers: { Accept: MANIFEST_ACCEPT }, scope: 'repository:a/b:pull' });
  t.equal(sourceFor({ kind: 'oci-blob', name: 'a/b', digest: D(1) }, ds).url, `http://r:5000/v2/a/b/blobs/${D(1)}`);
  t.equal(sourceFor({ kind: 'http', name: '/dir/a b.img', digest: D(1) }, { ...ds, type: 'http', url: 'http://h/base' }).url, 'http://h/base/dir/a%20b.img');
  t.match(MANIFEST_ACCEPT, /oci\.image\.index.*manifest\.list.*oci\.image\.manifest.*manifest\.v2/);
  t.same(parseReference('zedbox-test/busybox:1'), { repository: 'zedbox-test/busybox', tag: '1' });
  t.same(parseReference('library/alpine'), { repository: 'library/alpine', tag: 'latest' });
  t.same(parseReference(`a/b@${D(7)}`), { repository: 'a/b', digest: D(7) });
  t.throws(() => parseReference('Bad/Name:1'), /reference "Bad\/Name:1": bad repository name "Bad\/Name"/);
  t.throws(() => parseReference('a@sha256:zz'), /bad digest/);
});
