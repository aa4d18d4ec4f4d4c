import { getEventListeners, setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { backoffDelay, DEFAULT_BACKOFF, sleep, type BackoffPolicy } from '../../lib/backoff';

const P: BackoffPolicy = { minMs: 100, maxMs: 5000, jitter: 0.2 };
const NO_JITTER: BackoffPolicy = { ...P, jitter: 0 };

t.test('the default policy', async (t) => {
  t.same(DEFAULT_BACKOFF, { minMs: 1000, maxMs: 60_000, jitter: 0.2 });
});

t.test('doubles from minMs after each failure, up to maxMs', async (t) => {
  const table: Array<[number, number]> = [
    [0, 100], // no failure yet: still minMs, never less
    [1, 100],
    [2, 200],
    [3, 400],
    [4, 800],
    [5, 1600],
    [6, 3200],
    [7, 5000], // 6400 capped
    [8, 5000],
    [50, 5000],
    [2000, 5000], // 2 ** 1999 is Infinity: still capped, not NaN
  ];
  for (const [failures, ms] of table) t.equal(backoffDelay(NO_JITTER, failures), ms, `${failures} failures`);
  t.equal(backoffDelay({ minMs: 1000, maxMs: 60_000, jitter: 0 }, 7), 60_000, 'default-like policy reaches its cap at 7');
});

t.test('jitter takes up to `jitter` off the delay, never adds, never exceeds maxMs', async (t) => {
  const randoms = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1 - Number.EPSILON];
  for (let failures = 1; failures <= 10; failures++) {
    const base = Math.min(P.maxMs, P.minMs * 2 ** (failures - 1));
    const lo = Math.round(base * (1 - P.jitter));
    const got = randoms.map((r) => backoffDelay(P, failures, () => r));
    t.ok(got.every((d) => Number.isInteger(d) && d >= lo && d <= base), `${failures} failures: ${got.join(' ')} within [${lo}, ${base}]`);
    t.equal(Math.max(...got), base, `${failures} failures: random 0 gives the full delay`);
  }
  t.equal(backoffDelay(P, 1, () => 0), 100, 'random 0: the full delay');
  t.equal(backoffDelay(P, 1, () => 1 - Number.EPSILON), 80, 'random ~1: 20 % sooner');
  t.equal(backoffDelay(P, 3, () => 0.5), 360, 'random 0.5: 10 % off 400');
});

t.test('at the cap, jitter still spreads retries out', async (t) => {
  // Clamping a symmetric jitter to maxMs would put half the clients at exactly
  // maxMs, retrying in lock-step: what jitter is there to prevent.
  const grid = Array.from({ length: 100 }, (_, i) => (i + 0.5) / 100);
  const atCap = grid.map((r) => backoffDelay(P, 30, () => r)).filter((d) => d === P.maxMs).length;
  t.ok(atCap <= 5, `${atCap} of 100 evenly spread random values give exactly maxMs`);
});

t.test('random is consulted once per delay; jitter 0 ignores its value', async (t) => {
  let calls = 0;
  const r = (): number => { calls++; return 0.9; };
  backoffDelay(P, 3, r);
  t.equal(calls, 1);
  const flat: BackoffPolicy = { minMs: 10, maxMs: 1000, jitter: 0 };
  t.same([0, 0.3, 0.999].map((x) => backoffDelay(flat, 4, () => x)), [80, 80, 80]);
});

t.test('the real Math.random stays within bounds', async (t) => {
  const seen = new Set<number>();
  const outside: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const d = backoffDelay(DEFAULT_BACKOFF, 3);
    seen.add(d);
    if (d < 3200 || d > 4800) outside.push(d);
  }
  t.same(outside, [], '2000 delays after 3 failures within [3200, 4800]');
  t.ok(seen.size > 100, 'and actually varies');
});

t.test('sleep', async (t) => {
  t.test('waits about ms', async (t) => {
    const start = performance.now();
    await sleep(60);
    const took = performance.now() - start;
    t.ok(took >= 55, `took ${took.toFixed(1)} ms`);
  });

  t.test('resolves early, without throwing, when the signal aborts', async (t) => {
    const ac = new AbortController();
    const start = performance.now();
    setTimeout(() => ac.abort(new Error('stop')), 20);
    await t.resolves(sleep(30_000, ac.signal));
    const took = performance.now() - start;
    t.ok(took < 2000, `returned after ${took.toFixed(1)} ms`);
    t.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no listener left behind');
  });

  t.test('resolves at once for a signal that is already aborted', async (t) => {
    const start = performance.now();
    await sleep(30_000, AbortSignal.abort());
    t.ok(performance.now() - start < 1000);
  });

  t.test('removes its abort listener when the time is up', async (t) => {
    const ac = new AbortController();
    await sleep(5, ac.signal);
    t.equal(getEventListeners(ac.signal, 'abort').length, 0);
    ac.abort(); // and a late abort does nothing harmful
  });

  t.test('many sleeps on one long-lived signal do not pile up listeners', async (t) => {
    const ac = new AbortController();
    setMaxListeners(100, ac.signal); // 50 at once is the point here; agents' signals have no limit
    await Promise.all(Array.from({ length: 50 }, () => sleep(1, ac.signal)));
    t.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});
