import t from 'tap';
import { CoalescedRunner } from '../../lib/coalesced-runner';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('triggers during a pass coalesce into exactly one more pass; passes never overlap', async (t) => {
  let active = 0;
  let overlap = false;
  let passes = 0;
  const runner = new CoalescedRunner(async () => {
    active++;
    overlap ||= active > 1;
    passes++;
    await tick();
    active--;
  }, { signal: new AbortController().signal, onError: () => 'continue' });
  runner.trigger();
  runner.trigger();
  runner.trigger();
  await runner.idle();
  t.equal(passes, 2, 'the first pass, then one for the triggers that came during it');
  t.notOk(overlap, 'never two at once');
});

t.test('a trigger in the last moment of a pass is not lost', async (t) => {
  let passes = 0;
  let runner: CoalescedRunner | undefined;
  runner = new CoalescedRunner(async () => {
    passes++;
    // Ask again just as the pass ends, after its last await: the next loop check must see it.
    if (passes === 1) Promise.resolve().then(() => runner?.trigger());
  }, { signal: new AbortController().signal, onError: () => 'continue' });
  runner.trigger();
  await runner.idle();
  await tick();
  await runner.idle();
  t.equal(passes, 2, 'the late trigger ran a pass without any other event');
});

t.test('errors: continue keeps the loop, stop ends the drain; an aborted signal starts nothing', async (t) => {
  const seen: unknown[] = [];
  let passes = 0;
  const ac = new AbortController();
  let policy: 'continue' | 'stop' = 'continue';
  const runner = new CoalescedRunner(async () => {
    passes++;
    if (passes === 1) runner.trigger();
    throw new Error(`pass ${passes}`);
  }, { signal: ac.signal, onError: (err) => { seen.push((err as Error).message); return policy; } });
  runner.trigger();
  await runner.idle();
  t.same(seen, ['pass 1', 'pass 2'], 'continue: the queued pass still runs');
  policy = 'stop';
  runner.trigger();
  runner.trigger();
  await runner.idle();
  t.same(seen, ['pass 1', 'pass 2', 'pass 3'], 'stop: nothing more in this drain');
  ac.abort();
  runner.trigger();
  await runner.idle();
  t.equal(passes, 3, 'nothing starts after abort');
});
