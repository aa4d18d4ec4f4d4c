// Events waiting behind a slow handler merge per key: bounded by keys, and the
// handler still ends up told exactly the state it has not yet seen.
import t from 'tap';
import { Logger } from '../../lib/log';
import { defineCollection } from '../../pubsub/catalog';
import { EventQueue } from '../../pubsub/event-queue';
import { Mirror, type MirrorEvent } from '../../pubsub/mirror';
import { Subscription } from '../../pubsub/subscription';
import { Type } from '@sinclair/typebox';

const create = (key: string, value: unknown): MirrorEvent => ({ kind: 'create', key, value });
const modify = (key: string, value: unknown, old: unknown): MirrorEvent => ({ kind: 'modify', key, value, old });
const del = (key: string, old: unknown): MirrorEvent => ({ kind: 'delete', key, old });

function drain(q: EventQueue): MirrorEvent[] {
  const out: MirrorEvent[] = [];
  for (let e = q.shift(); e; e = q.shift()) out.push(e);
  return out;
}

t.test('merging follows what the handler has and has not seen', async (t) => {
  const cases: Array<[string, MirrorEvent[], MirrorEvent[]]> = [
    ['create then modify: create with the latest', [create('a', 1), modify('a', 2, 1)], [create('a', 2)]],
    ['create then delete: nothing', [create('a', 1), del('a', 1)], []],
    ['modify then modify: the first old, the last new', [modify('a', 2, 1), modify('a', 3, 2)], [modify('a', 3, 1)]],
    ['modify then delete: delete of what it saw', [modify('a', 2, 1), del('a', 2)], [del('a', 1)]],
    ['delete then create of another value: modify', [del('a', 1), create('a', 5)], [modify('a', 5, 1)]],
    ['delete then create of the same value: nothing', [del('a', { x: 1 }), create('a', { x: 1 })], []],
    ['modify back to what it saw: nothing', [modify('a', 2, 1), modify('a', 1, 2)], []],
    ['other keys and markers keep their order', [create('a', 1), { kind: 'synchronized' }, create('b', 1), modify('a', 2, 1)],
      [create('a', 2), { kind: 'synchronized' }, create('b', 1)]],
  ];
  for (const [name, input, want] of cases) {
    const q = new EventQueue();
    for (const e of input) q.push(e);
    t.equal(q.size, want.length, `${name}: size`);
    t.same(drain(q), want, name);
    t.equal(q.size, 0);
  }
});

t.test('an event taken by the handler is not merged into: later ones queue after it', async (t) => {
  const q = new EventQueue();
  q.push(create('a', 1));
  t.same(q.shift(), create('a', 1));
  q.push(modify('a', 2, 1));
  q.push(modify('a', 3, 2));
  t.same(drain(q), [modify('a', 3, 1)]);
});

t.test('100,000 updates to 10 keys behind a slow handler wait as 10 events', async (t) => {
  const q = new EventQueue();
  for (let i = 0; i < 100_000; i++) q.push(modify(`k${i % 10}`, i + 10, i));
  t.equal(q.size, 10);
});

t.test('a Subscription with a slow handler is told the latest state, in one call per key', async (t) => {
  const spec = defineCollection({ type: 'Thing', owner: 'x', schema: Type.Number(), description: 'test' });
  const calls: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => { release = r; });
  const sub = new Subscription(spec, 'x', {
    agent: 'test',
    create: async (k, v) => { calls.push(`create ${k}=${v}`); if (k === 'first') await gate; },
    modify: (k, v, old) => { calls.push(`modify ${k}=${v} (was ${old})`); },
    delete: (k, old) => { calls.push(`delete ${k} (was ${old})`); },
  }, new Logger({ source: 't', sink: { write: () => {} } }), () => {});
  sub.bindMirror(new Mirror());
  sub.deliver([create('first', 0), create('a', 1)]);
  await new Promise((r) => setImmediate(r)); // 'first' is now in its (slow) handler
  for (let i = 2; i <= 1000; i++) sub.deliver([modify('a', i, i - 1)]);
  sub.deliver([create('b', 1), del('b', 1)]);
  release();
  await new Promise((r) => setTimeout(r, 20));
  t.same(calls, ['create first=0', 'create a=1000'], 'a created once with its latest value; b came and went unseen');
});
