// The subscriber's replica: updates held while syncing, resync diffs, restarted, preload.
import t from 'tap';
import { MAX_BUFFERED_UPDATES, Mirror, type MirrorSnapshot, type MirrorUpdate, type Step } from '../../pubsub/mirror';
import { E1, E2, set, del, rst, snap, live, entriesOf, kinds, quiet } from '../lib/mirror-builders';

t.test('updates held while syncing', async (t) => {
  t.test('replay after the snapshot, only those newer than it', async (t) => {
    const m = new Mirror();
    m.beginSync();
    for (const u of [set(3, 'old', 1), set(4, 'a', 'stale'), del(5, 'gone'), set(6, 'a', 'new'), set(7, 'b', 1), del(8, 'c')]) {
      t.ok(quiet(m.onUpdate(u)), `seq ${u.seq} held silently`);
    }
    const step = m.onSnapshot(snap(5, { a: 'snap', c: 3 }));
    t.equal(step.resync, false);
    t.same(step.events, [
      { kind: 'create', key: 'a', value: 'snap' },
      { kind: 'create', key: 'c', value: 3 },
      { kind: 'synchronized' },
      { kind: 'modify', key: 'a', value: 'new', old: 'snap' },
      { kind: 'create', key: 'b', value: 1 },
      { kind: 'delete', key: 'c', old: 3 },
    ]);
    t.same(entriesOf(m), { a: 'new', b: 1 });
    t.equal(m.seq, 8);
    t.equal(m.status, 'live');
    t.notOk(m.entries.has('old'), 'updates older than the snapshot are not applied');
  });

  t.test('a gap inside the held updates asks for a resync', async (t) => {
    const m = new Mirror();
    m.beginSync();
    for (const u of [set(6, 'a', 1), set(8, 'b', 1), set(9, 'c', 1)]) m.onUpdate(u);
    const step = m.onSnapshot(snap(5, {}));
    t.equal(step.resync, true);
    t.equal(step.reason, 'gap: expected seq 7, got 8');
    t.same(kinds(step.events), ['synchronized', 'create:a'], 'what came before the gap is still delivered');
    t.same(entriesOf(m), { a: 1 });
    t.equal(m.status, 'waiting');
  });

  t.test('a gap between the snapshot and the first held update asks for a resync', async (t) => {
    const m = new Mirror();
    m.beginSync();
    m.onUpdate(set(9, 'a', 1));
    const step = m.onSnapshot(snap(5, { x: 1 }));
    t.equal(step.resync, true);
    t.equal(step.reason, 'gap: expected seq 6, got 9');
    t.same(entriesOf(m), { x: 1 });
  });

  t.test('held updates of another epoch than the snapshot ask for a resync', async (t) => {
    const m = new Mirror();
    m.beginSync();
    m.onUpdate(set(6, 'a', 1, E2));
    const step = m.onSnapshot(snap(5, {}));
    t.equal(step.resync, true);
    t.match(step.reason, /new epoch/);
    t.notOk(m.entries.has('a'));
  });

  t.test('a new sync drops what the previous one held', async (t) => {
    const m = new Mirror();
    m.beginSync();
    m.onUpdate(set(6, 'a', 1));
    m.beginSync();
    const step = m.onSnapshot(snap(5, {}));
    t.same(step, { events: [{ kind: 'synchronized' }], resync: false });
    t.equal(m.seq, 5);
  });

  t.test('up to MAX_BUFFERED_UPDATES are held and replayed', async (t) => {
    t.equal(MAX_BUFFERED_UPDATES, 50_000);
    const m = new Mirror();
    m.beginSync();
    for (let i = 1; i <= MAX_BUFFERED_UPDATES; i++) m.onUpdate(set(100 + i, `k${i % 10}`, i));
    const step = m.onSnapshot(snap(100, {}));
    t.equal(step.resync, false);
    t.equal(m.seq, 100 + MAX_BUFFERED_UPDATES);
    t.equal(m.entries.get('k0'), MAX_BUFFERED_UPDATES);
    t.equal(m.stats.applied, MAX_BUFFERED_UPDATES);
  });

  t.test('one more than MAX_BUFFERED_UPDATES: the snapshot applies, then resync', async (t) => {
    const m = live({ stay: 1, go: 2 }, 0);
    m.beginSync();
    for (let i = 1; i <= MAX_BUFFERED_UPDATES + 1; i++) m.onUpdate(set(100 + i, 'k', i));
    const step = m.onSnapshot(snap(100, { stay: 1, fresh: 3 }));
    t.equal(step.resync, true);
    t.equal(step.reason, 'too many updates while syncing');
    t.same(kinds(step.events), ['delete:go', 'create:fresh'], 'the snapshot itself is delivered');
    t.notOk(m.entries.has('k'), 'nothing held is applied');
    t.equal(m.seq, 100);
    t.equal(m.stats.applied, 0);

    // The next sync starts clean.
    m.beginSync();
    m.onUpdate(set(102, 'k', 'after'));
    const next = m.onSnapshot(snap(101, { stay: 1, fresh: 3 }));
    t.same(next, { events: [{ kind: 'create', key: 'k', value: 'after' }], resync: false });
  });

  t.test('overflow keeps dropping until the snapshot comes', async (t) => {
    const m = new Mirror();
    m.beginSync();
    for (let i = 1; i <= MAX_BUFFERED_UPDATES + 10; i++) m.onUpdate(set(i, 'k', i));
    const step = m.onSnapshot(snap(MAX_BUFFERED_UPDATES + 5, {}));
    t.equal(step.resync, true, 'updates after the overflow are not held either');
    t.equal(step.reason, 'too many updates while syncing');
    t.notOk(m.entries.has('k'));
  });
});

t.test('resync snapshots deliver exactly the differences', async (t) => {
  t.test('deletes for vanished keys, modifies for real changes, nothing for equal values', async (t) => {
    const m = live({ same: { x: 1, y: [1, 2] }, changed: { v: 1 }, vanished: 'v', alsoGone: 0 }, 4);
    t.equal(m.onUpdate(set(9, 'changed', { v: 5 })).resync, true, 'lost an update');
    m.beginSync();
    const step = m.onSnapshot(snap(12, { same: { y: [1, 2], x: 1 }, changed: { v: 2 }, added: true }));
    t.equal(step.resync, false);
    t.same(step.events, [
      { kind: 'delete', key: 'vanished', old: 'v' },
      { kind: 'delete', key: 'alsoGone', old: 0 },
      { kind: 'modify', key: 'changed', value: { v: 2 }, old: { v: 1 } },
      { kind: 'create', key: 'added', value: true },
    ]);
    t.same(entriesOf(m), { same: { x: 1, y: [1, 2] }, changed: { v: 2 }, added: true });
    t.equal(m.seq, 12);
  });

  t.test('a delete made while the subscriber was away is seen (EVE loses it)', async (t) => {
    const m = live({ app1: { state: 'running' }, app2: { state: 'running' } }, 2);
    // Disconnected: the publisher unpublishes app1 at seq 3 and we never see it.
    t.equal(m.onHeartbeat(E1, 3).resync, true);
    m.beginSync();
    const step = m.onSnapshot(snap(3, { app2: { state: 'running' } }));
    t.same(step.events, [{ kind: 'delete', key: 'app1', old: { state: 'running' } }]);
    t.notOk(m.entries.has('app1'));
  });

  t.test('deletes missed across a publisher restart are seen', async (t) => {
    const m = live({ a: 1, b: 2 }, 2);
    t.equal(m.onHeartbeat(E2, 1).resync, true);
    m.beginSync();
    const step = m.onSnapshot(snap(1, { b: 2 }, { epoch: E2 }));
    t.same(step.events, [{ kind: 'delete', key: 'a', old: 1 }]);
    t.equal(m.epoch, E2);
    t.equal(m.seq, 1);
  });

  t.test('an identical snapshot delivers nothing', async (t) => {
    const m = live({ a: { n: 1 }, b: [1, { c: null }] }, 4);
    m.beginSync();
    t.same(m.onSnapshot(snap(4, { b: [1, { c: null }], a: { n: 1 } })), { events: [], resync: false });
  });

  t.test('keys whose snapshot value is invalid keep their current value', async (t) => {
    const m = live({ kept: 'old', gone: 1 }, 1);
    m.beginSync();
    const step = m.onSnapshot(snap(2, {}, { invalid: ['kept', 'neverSeen'] }));
    t.same(step.events, [{ kind: 'delete', key: 'gone', old: 1 }]);
    t.same(entriesOf(m), { kept: 'old' }, 'invalid key not deleted, unknown invalid key not created');
  });

  t.test('an empty resync snapshot deletes everything', async (t) => {
    const m = live({ a: 1, b: 2 }, 1);
    m.beginSync();
    t.same(kinds(m.onSnapshot(snap(2, {})).events), ['delete:a', 'delete:b']);
    t.equal(m.entries.size, 0);
  });
});

t.test('restarted', async (t) => {
  t.test('the first snapshot reports a non-zero counter after synchronized', async (t) => {
    const m = new Mirror();
    m.beginSync();
    const step = m.onSnapshot(snap(3, { a: 1 }, { restarted: 2 }));
    t.same(kinds(step.events), ['create:a', 'synchronized', 'restarted']);
    t.same(step.events[2], { kind: 'restarted', counter: 2 });
    t.equal(m.restarted, 2);
  });

  t.test('never fires for 0', async (t) => {
    const m = new Mirror();
    m.beginSync();
    t.same(kinds(m.onSnapshot(snap(1, {}, { restarted: 0 })).events), ['synchronized']);
    t.same(m.onUpdate(rst(2, 0)).events, [], 'an update to 0');
    m.beginSync();
    t.same(m.onSnapshot(snap(1, {}, { epoch: E2, restarted: 0 })).events, [], 'a new epoch at 0');
    t.equal(m.restarted, 0);
  });

  t.test('fires when the counter changes, not when it repeats', async (t) => {
    const m = live({}, 0);
    const table: Array<[string, MirrorUpdate | MirrorSnapshot, number[]]> = [
      ['update to 1', rst(1, 1), [1]],
      ['update to 1 again', rst(2, 1), []],
      ['update to 2', rst(3, 2), [2]],
      ['resync snapshot, same epoch, same counter', snap(3, {}, { restarted: 2 }), []],
      ['resync snapshot, same epoch, new counter', snap(5, {}, { restarted: 3 }), [3]],
    ];
    for (const [name, msg, counters] of table) {
      let step: Step;
      if ('op' in msg) step = m.onUpdate(msg);
      else {
        m.beginSync();
        step = m.onSnapshot(msg);
      }
      t.equal(step.resync, false, name);
      t.same(step.events, counters.map((counter) => ({ kind: 'restarted', counter })), name);
    }
    t.equal(m.restarted, 3);
  });

  t.test('a restarted publisher that signals again is seen again, with the same counter', async (t) => {
    const m = live({}, 0);
    t.same(m.onUpdate(rst(1, 1)).events, [{ kind: 'restarted', counter: 1 }]);
    // The publisher restarts: new epoch, counter back to 0.
    t.equal(m.onHeartbeat(E2, 0).resync, true);
    m.beginSync();
    t.same(m.onSnapshot(snap(0, {}, { epoch: E2, restarted: 0 })).events, []);
    t.equal(m.restarted, 0, 'the subscriber sees that the new instance has not signalled');
    t.same(m.onUpdate(rst(1, 1, E2)).events, [{ kind: 'restarted', counter: 1 }], 'signal in the new epoch fires again');
  });

  t.test('a publisher that restarted and signalled before we resynced is still seen', async (t) => {
    const m = live({}, 0, { restarted: 1 });
    t.equal(m.restarted, 1);
    t.equal(m.onUpdate(rst(1, 1, E2)).resync, true, 'the new epoch shows in an update');
    m.beginSync();
    const step = m.onSnapshot(snap(1, {}, { epoch: E2, restarted: 1 }));
    t.same(step.events, [{ kind: 'restarted', counter: 1 }], 'same counter, new epoch: fires');
    m.beginSync();
    t.same(m.onSnapshot(snap(1, {}, { epoch: E2, restarted: 1 })).events, [], 'but only once per epoch');
  });

  t.test('a restarted update held during sync fires once after the snapshot', async (t) => {
    const m = new Mirror();
    m.beginSync();
    m.onUpdate(rst(4, 1));
    m.onUpdate(rst(5, 1));
    const step = m.onSnapshot(snap(3, {}, { restarted: 0 }));
    t.same(step.events, [{ kind: 'synchronized' }, { kind: 'restarted', counter: 1 }]);
  });
});

t.test('preload', async (t) => {
  t.test('creates each value known before the publisher answers', async (t) => {
    const m = new Mirror();
    const events = m.preload(new Map<string, unknown>([['a', 1], ['b', { x: 2 }]]));
    t.same(events, [
      { kind: 'create', key: 'a', value: 1 },
      { kind: 'create', key: 'b', value: { x: 2 } },
    ]);
    t.equal(m.synchronized, false, 'files on disk are not the publisher');
    t.equal(m.status, 'waiting');
    t.same(m.preload(new Map([['a', 99]])), [], 'a key already held is not overwritten');
    t.equal(m.entries.get('a'), 1);
  });

  t.test('the first snapshot then delivers only the differences', async (t) => {
    const m = new Mirror();
    m.preload(new Map<string, unknown>([['same', { v: 1 }], ['changed', 1], ['deleted', 1]]));
    m.beginSync();
    const step = m.onSnapshot(snap(8, { same: { v: 1 }, changed: 2, fresh: 3 }));
    t.same(step.events, [
      { kind: 'delete', key: 'deleted', old: 1 },
      { kind: 'modify', key: 'changed', value: 2, old: 1 },
      { kind: 'create', key: 'fresh', value: 3 },
      { kind: 'synchronized' },
    ]);
  });
});

t.test('wire text makes equality cheap without changing what handlers see', async (t) => {
  const texts = (o: Record<string, unknown>): Map<string, string> => new Map(Object.entries(o).map(([k, v]) => [k, JSON.stringify(v)]));
  const first = { a: { x: 1, y: 2 }, b: { n: 1 } };
  const m = new Mirror();
  m.beginSync();
  m.onSnapshot({ ...snap(1, first), texts: texts(first) });

  // A restarted publisher rebuilt a's value with its keys in another order: not a change.
  const reordered = { a: { y: 2, x: 1 }, b: { n: 2 } };
  m.beginSync();
  const step = m.onSnapshot({ ...snap(5, reordered, { epoch: E2 }), texts: texts(reordered) });
  t.same(kinds(step.events), ['modify:b'], 'only the real change; the reordered value is the same value');

  // In sequence, different text is a change: the publisher compared before sending.
  const live1 = m.onUpdate({ op: 'set', epoch: E2, seq: 6, key: 'b', value: { n: 3 }, json: '{"n":3}' });
  t.same(kinds(live1.events), ['modify:b']);
  const same = m.onUpdate({ op: 'set', epoch: E2, seq: 7, key: 'b', value: { n: 3 }, json: '{"n":3}' });
  t.same(same.events, [], 'identical text is never a change');
  t.equal(m.seq, 7);
});
