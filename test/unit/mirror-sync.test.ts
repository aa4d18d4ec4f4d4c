// The subscriber's replica: first snapshots, live updates in sequence, heartbeats.
import t from 'tap';
import { Mirror, type MirrorEvent, type MirrorSnapshot, type MirrorUpdate } from '../../pubsub/mirror';
import { E1, E2, set, del, rst, bad, snap, live, entriesOf, quiet } from '../lib/mirror-builders';

t.test('before any snapshot', async (t) => {
  t.test('an update asks for a snapshot and changes nothing', async (t) => {
    const m = new Mirror();
    const step = m.onUpdate(set(1, 'a', 1));
    t.equal(step.resync, true);
    t.match(step.reason, /before first snapshot/);
    t.same(step.events, []);
    t.equal(m.status, 'waiting');
    t.equal(m.entries.size, 0);
  });

  t.test('a heartbeat from the publisher asks for a snapshot', async (t) => {
    const m = new Mirror();
    const step = m.onHeartbeat(E1, 10);
    t.equal(step.resync, true);
    t.match(step.reason, /announced/);
    t.same(step.events, []);
  });

  t.test('while a snapshot is on its way, heartbeats and updates are quiet', async (t) => {
    const m = new Mirror();
    m.beginSync();
    t.equal(m.status, 'syncing');
    t.equal(m.stats.resyncs, 1);
    t.ok(quiet(m.onHeartbeat(E1, 99)), 'heartbeat');
    t.ok(quiet(m.onHeartbeat(E2, 1)), 'heartbeat of another epoch');
    t.ok(quiet(m.onUpdate(set(1, 'a', 1))), 'update is held');
    t.equal(m.entries.size, 0, 'held update not applied yet');
  });
});

t.test('first snapshot', async (t) => {
  t.test('creates each entry, then one synchronized', async (t) => {
    const m = new Mirror();
    m.beginSync();
    const step = m.onSnapshot(snap(7, { a: 1, b: { x: [1, 2] }, c: 'three' }));
    t.equal(step.resync, false);
    t.same(step.events, [
      { kind: 'create', key: 'a', value: 1 },
      { kind: 'create', key: 'b', value: { x: [1, 2] } },
      { kind: 'create', key: 'c', value: 'three' },
      { kind: 'synchronized' },
    ]);
    t.equal(m.status, 'live');
    t.equal(m.epoch, E1);
    t.equal(m.seq, 7);
    t.equal(m.synchronized, true);
    t.same(entriesOf(m), { a: 1, b: { x: [1, 2] }, c: 'three' });
  });

  t.test('an empty snapshot still synchronizes', async (t) => {
    const m = new Mirror();
    m.beginSync();
    const step = m.onSnapshot(snap(0, {}));
    t.same(step, { events: [{ kind: 'synchronized' }], resync: false });
    t.equal(m.synchronized, true);
  });

  t.test('later snapshots never fire synchronized again', async (t) => {
    const m = live({ a: 1 }, 3);
    const cases: Array<[string, MirrorSnapshot]> = [
      ['same epoch, same state', snap(3, { a: 1 })],
      ['same epoch, new state', snap(9, { a: 2, b: 1 })],
      ['new epoch', snap(1, { a: 2 }, { epoch: E2 })],
      ['empty', snap(5, {}, { epoch: E2 })],
    ];
    for (const [name, s] of cases) {
      m.beginSync();
      const step = m.onSnapshot(s);
      t.notOk(step.events.some((e) => e.kind === 'synchronized'), name);
      t.equal(step.resync, false, `${name}: no resync`);
    }
    t.equal(m.synchronized, true);
  });
});

t.test('live updates', async (t) => {
  t.test('are applied in order with the right events', async (t) => {
    const m = live({ a: 1 }, 10);
    const table: Array<[string, MirrorUpdate, MirrorEvent[], Record<string, unknown>]> = [
      ['set of a new key creates', set(11, 'b', { v: 1 }), [{ kind: 'create', key: 'b', value: { v: 1 } }], { a: 1, b: { v: 1 } }],
      ['set of a changed value modifies', set(12, 'b', { v: 2 }), [{ kind: 'modify', key: 'b', value: { v: 2 }, old: { v: 1 } }], { a: 1, b: { v: 2 } }],
      ['set of an equal value is silent', set(13, 'b', { v: 2 }), [], { a: 1, b: { v: 2 } }],
      ['set of an equal object in another key order is silent', set(14, 'c', { x: 1, y: 2 }), [{ kind: 'create', key: 'c', value: { x: 1, y: 2 } }], { a: 1, b: { v: 2 }, c: { x: 1, y: 2 } }],
      ['...', set(15, 'c', { y: 2, x: 1 }), [], { a: 1, b: { v: 2 }, c: { x: 1, y: 2 } }],
      ['del of a known key deletes with the old value', del(16, 'a'), [{ kind: 'delete', key: 'a', old: 1 }], { b: { v: 2 }, c: { x: 1, y: 2 } }],
      ['del of an unknown key is silent', del(17, 'zz'), [], { b: { v: 2 }, c: { x: 1, y: 2 } }],
      ['an invalid set changes nothing', bad(18, 'b'), [], { b: { v: 2 }, c: { x: 1, y: 2 } }],
      ['a set after the invalid one applies', set(19, 'a', 0), [{ kind: 'create', key: 'a', value: 0 }], { a: 0, b: { v: 2 }, c: { x: 1, y: 2 } }],
      ['null is a value, not a delete', set(20, 'a', null), [{ kind: 'modify', key: 'a', value: null, old: 0 }], { a: null, b: { v: 2 }, c: { x: 1, y: 2 } }],
    ];
    for (const [name, u, events, state] of table) {
      const step = m.onUpdate(u);
      t.same(step, { events, resync: false }, name);
      t.equal(m.seq, u.seq, `${name}: seq advances`);
      t.same(entriesOf(m), state, `${name}: state`);
    }
    t.equal(m.stats.applied, table.length);
    t.equal(m.status, 'live');
  });

  t.test('duplicate or old sequence numbers are ignored', async (t) => {
    for (const seq of [1, 5, 9, 10]) {
      const m = live({ a: 1 }, 10);
      const before = m.stats.applied;
      const steps = [m.onUpdate(set(seq, 'a', 2)), m.onUpdate(del(seq, 'a')), m.onUpdate(rst(seq, 4))];
      t.ok(steps.every(quiet), `seq ${seq} <= 10: no events, no resync`);
      t.same(entriesOf(m), { a: 1 }, `seq ${seq}: state unchanged`);
      t.equal(m.seq, 10);
      t.equal(m.restarted, 0);
      t.equal(m.stats.applied, before);
    }
    const m = live({}, 0);
    t.same(m.onUpdate(set(1, 'k', 1)).events, [{ kind: 'create', key: 'k', value: 1 }]);
    t.ok(quiet(m.onUpdate(set(1, 'k', 2))), 'the same update delivered twice is applied once');
    t.same(entriesOf(m), { k: 1 });
  });

  t.test('a gap in the sequence asks for a resync', async (t) => {
    for (const [got, expected] of [[12, 11], [1000, 11]] as const) {
      const m = live({ a: 1 }, 10);
      const step = m.onUpdate(set(got, 'a', 2));
      t.equal(step.resync, true, `seq ${got}`);
      t.same(step.events, []);
      t.equal(step.reason, `gap: expected seq ${expected}, got ${got}`);
      t.equal(m.status, 'waiting');
      t.equal(m.stats.gaps, 1);
      t.same(entriesOf(m), { a: 1 }, 'the update after the gap is not applied');
      t.equal(m.seq, 10);
    }
  });

  t.test('an update from a new epoch asks for a resync', async (t) => {
    for (const u of [set(11, 'a', 2, E2), del(11, 'a', E2), rst(1, 1, E2), set(1, 'a', 2, E2)]) {
      const m = live({ a: 1 }, 10);
      const step = m.onUpdate(u);
      t.equal(step.resync, true, `${u.op} seq ${u.seq}`);
      t.match(step.reason, /new epoch/);
      t.same(step.events, []);
      t.equal(m.stats.epochChanges, 1);
      t.equal(m.status, 'waiting');
      t.same(entriesOf(m), { a: 1 });
      t.equal(m.epoch, E1);
    }
  });
});

t.test('heartbeats while live', async (t) => {
  const table: Array<[string, number, number, boolean, RegExp | undefined]> = [
    ['equal position: nothing', E1, 10, false, undefined],
    ['older seq (already past it): nothing', E1, 9, false, undefined],
    ['ahead by one: resync', E1, 11, true, /behind: at seq 10, publisher at 11/],
    ['far ahead: resync', E1, 5000, true, /behind/],
    ['new epoch, same seq: resync', E2, 10, true, /new epoch/],
    ['new epoch, lower seq: resync', E2, 1, true, /new epoch/],
  ];
  for (const [name, epoch, seq, resync, reason] of table) {
    const m = live({ a: 1 }, 10);
    const step = m.onHeartbeat(epoch, seq);
    t.equal(step.resync, resync, name);
    t.same(step.events, [], `${name}: no events`);
    if (reason) t.match(step.reason, reason, `${name}: reason`);
    t.equal(m.status, resync ? 'waiting' : 'live', `${name}: status`);
    t.same(entriesOf(m), { a: 1 });
  }
  const m = live({}, 3);
  m.onHeartbeat(E1, 4);
  t.equal(m.stats.gaps, 1, 'being behind counts as a gap');
  const n = live({}, 3);
  n.onHeartbeat(E2, 3);
  t.equal(n.stats.epochChanges, 1);
});

t.test('wants: only an update that will be applied or held needs its value read', async (t) => {
  const m = new Mirror();
  t.notOk(m.wants(E1, 1), 'waiting: it will resync, not use the value');
  m.beginSync();
  t.ok(m.wants(E1, 1), 'syncing: held for after the snapshot');
  m.onSnapshot(snap(4, { a: 1 }));
  t.ok(m.wants(E1, 5), 'live: the next in sequence');
  t.notOk(m.wants(E1, 4), 'live: already covered');
  t.notOk(m.wants(E1, 7), 'live: a gap, so a resync');
  t.notOk(m.wants(E2, 5), 'live: another epoch, so a resync');
});
