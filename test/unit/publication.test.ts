// The publisher's side of one collection, with a fake sink (an array of sent
// messages) and a real PersistentStore in a temporary directory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { Type, type Static } from '@sinclair/typebox';
import { Logger } from '../../lib/log';
import { defineCollection, MAX_KEY_BYTES } from '../../pubsub/catalog';
import {
  ClosedError,
  InvalidKeyError,
  InvalidValueError,
  UnknownKeyError,
  ValueTooLargeError,
} from '../../pubsub/errors';
import { PersistentStore } from '../../pubsub/persistent-store';
import { Publication, type UpdateSink } from '../../pubsub/publication';
import { decodeUpdate, OP_DEL, OP_RESTARTED, OP_SET, type UpdateMsg } from '../../pubsub/wire';

const ItemSchema = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    n: Type.Integer({ minimum: 0 }),
    tags: Type.Optional(Type.Array(Type.String())),
    inner: Type.Optional(Type.Object({ port: Type.Integer({ minimum: 1, maximum: 65535 }) })),
  },
  { additionalProperties: false },
);
type Item = Static<typeof ItemSchema>;

const MAX_BYTES = 300;
const Items = defineCollection({
  type: 'Item',
  owner: 'nim',
  schema: ItemSchema,
  description: 'test items keyed by name',
  keyOf: (v) => v.name,
  maxValueBytes: MAX_BYTES,
});
const Saved = defineCollection({
  type: 'Saved',
  owner: 'nim',
  schema: ItemSchema,
  description: 'persistent test items, any key',
  persistent: true,
});

interface Rig {
  pub: Publication<typeof ItemSchema>;
  sent: UpdateMsg[];
  lines: Array<Record<string, unknown>>;
}

function logger(lines: Array<Record<string, unknown>>): Logger {
  return new Logger({ source: 'test', level: 'trace', sink: { write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) } });
}

function decode(frames: Buffer[]): UpdateMsg {
  const m = decodeUpdate(frames);
  if ('problem' in m) throw new Error(`publication sent a malformed message: ${m.problem}`);
  return m;
}

function rig(spec = Items, store?: PersistentStore, onSend?: (m: UpdateMsg) => void): Rig {
  const sent: UpdateMsg[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const sink: UpdateSink = {
    send(frames) {
      const m = decode(frames);
      onSend?.(m);
      sent.push(m);
    },
  };
  return { pub: new Publication(spec, 'nim', sink, logger(lines), store), sent, lines };
}

function tmpStore(t: tap.Test): PersistentStore {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-pub-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  return new PersistentStore(PersistentStore.dirFor(root, 'nim', 'Saved'));
}

const item = (name: string, n = 1, extra: Partial<Item> = {}): Item => ({ name, n, ...extra });

t.test('a new publication is empty, with a non-zero epoch', async (t) => {
  const { pub, sent } = rig();
  t.ok(Number.isInteger(pub.epoch) && pub.epoch > 0 && pub.epoch <= 0xffffffff);
  t.equal(pub.seq, 0);
  t.equal(pub.size, 0);
  t.equal(pub.restarted, 0);
  t.same(pub.keys(), []);
  t.same(sent, []);
  t.same(pub.info(), { type: 'Item', keys: 0, epoch: pub.epoch, seq: 0, restarted: 0, persistent: false });
  t.not(rig().pub.epoch, pub.epoch, 'each instance has its own epoch');
});

t.test('publish', async (t) => {
  t.test('a new key sends SET with the next seq', async (t) => {
    const { pub, sent } = rig();
    t.equal(pub.publish('a', item('a', 1)), true);
    t.same(sent, [{ type: 'Item', op: OP_SET, epoch: pub.epoch, seq: 1, key: 'a', json: '{"name":"a","n":1}' }]);
    t.equal(pub.seq, 1);
    t.same(pub.get('a'), item('a', 1));
  });

  t.test('an equal value returns false and sends nothing', async (t) => {
    const { pub, sent } = rig();
    pub.publish('a', item('a', 1, { tags: ['x', 'y'] }));
    const cases: Array<[string, Item]> = [
      ['same object shape', item('a', 1, { tags: ['x', 'y'] })],
      ['other key order', { tags: ['x', 'y'], n: 1, name: 'a' }],
      ['an undefined optional field', { name: 'a', n: 1, tags: ['x', 'y'], inner: undefined }],
    ];
    for (const [name, v] of cases) t.equal(pub.publish('a', v), false, name);
    t.equal(sent.length, 1, 'only the first publish was sent');
    t.equal(pub.seq, 1);
  });

  t.test('a modified value sends SET with seq + 1', async (t) => {
    const { pub, sent } = rig();
    pub.publish('a', item('a', 1));
    pub.publish('b', item('b', 1));
    t.equal(pub.publish('a', item('a', 2)), true);
    t.equal(pub.publish('a', item('a', 1)), true, 'back to the earlier value is a change too');
    t.same(sent.map((m) => [m.seq, m.key, m.json]), [
      [1, 'a', '{"name":"a","n":1}'],
      [2, 'b', '{"name":"b","n":1}'],
      [3, 'a', '{"name":"a","n":2}'],
      [4, 'a', '{"name":"a","n":1}'],
    ]);
    t.ok(sent.every((m) => m.epoch === pub.epoch && m.type === 'Item'));
    t.equal(pub.size, 2);
  });

  t.test('a schema-invalid value throws InvalidValueError naming the field', async (t) => {
    const table: Array<[string, unknown, RegExp]> = [
      ['wrong type', { name: 'a', n: 'one' }, /\/n: /],
      ['below minimum', { name: 'a', n: -1 }, /\/n: /],
      ['missing field', { name: 'a' }, /\/n: /],
      ['extra field', { name: 'a', n: 1, bogus: true }, /\/bogus: /],
      ['nested field', { name: 'a', n: 1, inner: { port: 70000 } }, /\/inner\/port: /],
      ['array element', { name: 'a', n: 1, tags: ['ok', 5] }, /\/tags\/1: /],
      ['not an object', 'a', /\/: /],
    ];
    const { pub, sent } = rig();
    for (const [name, value, field] of table) {
      const err = t.throws(() => pub.publish('a', value as Item), InvalidValueError, name) as InvalidValueError;
      t.match(err.message, field, `${name}: ${err.message}`);
      t.match(err.message, /^Item\/a: invalid value: /);
      t.equal(err.type, 'Item');
      t.equal(err.key, 'a');
      t.ok(err.problems.length >= 1 && err.problems.length <= 5);
    }
    t.same(sent, []);
    t.equal(pub.seq, 0);
    t.equal(pub.get('a'), undefined);
  });

  t.test('a value over maxValueBytes throws ValueTooLargeError with the sizes', async (t) => {
    const { pub, sent } = rig();
    const fits = item('a', 1, { tags: ['x'.repeat(MAX_BYTES - '{"name":"a","n":1,"tags":[""]}'.length)] });
    t.equal(Buffer.byteLength(JSON.stringify(fits)), MAX_BYTES);
    t.equal(pub.publish('a', fits), true, 'exactly at the limit is accepted');
    const big = item('a', 1, { tags: ['é'.repeat(MAX_BYTES)] }); // 2 bytes each in UTF-8
    const bytes = Buffer.byteLength(JSON.stringify(big));
    const err = t.throws(() => pub.publish('a', big), ValueTooLargeError) as ValueTooLargeError;
    t.equal(err.bytes, bytes, 'counts UTF-8 bytes, not characters');
    t.equal(err.limit, MAX_BYTES);
    t.match(err.message, new RegExp(`${bytes} bytes, over the ${MAX_BYTES}-byte limit`));
    t.equal(sent.length, 1);
    t.same(pub.get('a'), fits, 'the old value stays');
  });

  t.test('a key that disagrees with keyOf throws InvalidKeyError', async (t) => {
    const { pub, sent } = rig();
    const err = t.throws(() => pub.publish('a', item('b')), InvalidKeyError) as InvalidKeyError;
    t.match(err.message, /"b"/, 'names the value\'s own key');
    t.equal(err.key, 'a');
    t.same(sent, []);
    t.equal(pub.size, 0);
  });

  t.test('unusable keys throw InvalidKeyError', async (t) => {
    const { pub, sent } = rig(Saved);
    const table: Array<[string, string]> = [
      ['empty', ''],
      ['newline', 'a\nb'],
      ['NUL', 'a\u0000'],
      ['too long', 'k'.repeat(MAX_KEY_BYTES + 1)],
      ['too long in UTF-8 bytes', 'é'.repeat(MAX_KEY_BYTES / 2 + 1)],
    ];
    for (const [name, key] of table) t.throws(() => pub.publish(key, item('x')), InvalidKeyError, name);
    t.equal(pub.publish('k'.repeat(MAX_KEY_BYTES), item('x')), true, 'exactly MAX_KEY_BYTES is fine');
    t.equal(pub.publish('a/b c', item('x')), true, 'slashes and spaces are fine');
    t.equal(sent.length, 2);
  });

  t.test('keys that are not well-formed UTF-16 are refused', async (t) => {
    // A lone surrogate passes keyProblem. Without a store it becomes U+FFFD on
    // the wire (Buffer.from), so different keys collide for subscribers; with a
    // store, encodeURIComponent in PersistentStore.fileFor throws a URIError.
    t.test('in memory', async (t) => {
      const { pub, sent } = rig(Saved);
      let threw: unknown;
      try { pub.publish('\ud800', item('x')); } catch (err) { threw = err; }
      t.type(threw, InvalidKeyError, 'lone high surrogate');
      try { pub.publish('\udc00', item('y')); } catch { /* counted below */ }
      const wireKeys = new Set(sent.map((m) => m.key));
      t.equal(wireKeys.size, sent.length, `distinct keys stay distinct on the wire (${[...wireKeys].map((k) => JSON.stringify(k)).join()})`);
    });
    t.test('persistent', async (t) => {
      const { pub, sent } = rig(Saved, tmpStore(t));
      let threw: unknown;
      try { pub.publish('\ud800', item('x')); } catch (err) { threw = err; }
      t.type(threw, InvalidKeyError, `a BusError, not ${(threw as Error | undefined)?.name}`);
      t.same(sent, []);
    });
  });

  t.test('the caller\'s object is copied: later changes to it do not leak', async (t) => {
    const { pub } = rig();
    const v = item('a', 1, { tags: ['x'] });
    pub.publish('a', v);
    v.n = 99;
    v.tags?.push('y');
    t.same(pub.get('a'), item('a', 1, { tags: ['x'] }));
    t.notOk(Object.isFrozen(v), 'the caller\'s own object is not frozen');
  });
});

t.test('get and getAll return frozen values', async (t) => {
  const { pub, sent } = rig();
  pub.publish('a', item('a', 1, { tags: ['x'], inner: { port: 80 } }));
  pub.publish('b', item('b', 2));
  const a = pub.get('a') as Item;
  t.ok(Object.isFrozen(a) && Object.isFrozen(a.tags) && Object.isFrozen(a.inner), 'deeply frozen');
  t.throws(() => { (a as { n: number }).n = 5; }, TypeError);
  t.throws(() => { a.tags?.push('y'); }, TypeError);
  t.equal(pub.get('missing'), undefined);

  const all = pub.getAll();
  t.same([...all.keys()].sort(), ['a', 'b']);
  t.ok([...all.values()].every((v) => Object.isFrozen(v)));
  all.delete('a');
  all.set('zz', item('zz'));
  t.same(pub.keys().sort(), ['a', 'b'], 'the returned map is a copy');
  t.equal(sent.length, 2);
});

t.test('unpublish', async (t) => {
  const { pub, sent } = rig();
  pub.publish('a', item('a'));
  pub.unpublish('a');
  t.same(sent[1], { type: 'Item', op: OP_DEL, epoch: pub.epoch, seq: 2, key: 'a' });
  t.equal(pub.get('a'), undefined);
  t.equal(pub.size, 0);

  for (const key of ['a', 'never', '']) {
    const err = t.throws(() => pub.unpublish(key), UnknownKeyError, `unknown key ${JSON.stringify(key)}`) as UnknownKeyError;
    t.equal(err.type, 'Item');
    t.equal(err.key, key);
  }
  t.equal(sent.length, 2, 'nothing sent for unknown keys');
  t.equal(pub.seq, 2);
  t.equal(pub.publish('a', item('a')), true, 'an unpublished key can be published again');
  t.equal(sent[2]?.seq, 3);
});

t.test('signalRestarted sends RESTARTED with the counter and the next seq', async (t) => {
  const { pub, sent } = rig();
  pub.publish('a', item('a'));
  pub.signalRestarted();
  pub.signalRestarted();
  t.same(sent.slice(1), [
    { type: 'Item', op: OP_RESTARTED, epoch: pub.epoch, seq: 2, key: '', counter: 1 },
    { type: 'Item', op: OP_RESTARTED, epoch: pub.epoch, seq: 3, key: '', counter: 2 },
  ]);
  t.equal(pub.restarted, 2);
});

t.test('snapshot() and info() describe the current state', async (t) => {
  const { pub } = rig();
  t.same(pub.snapshot(), { epoch: pub.epoch, seq: 0, restarted: 0, persistent: false, entries: [] });
  pub.publish('a', { n: 1, name: 'a' });
  pub.publish('b', item('b', 2, { tags: ['t'] }));
  pub.publish('c', item('c'));
  pub.unpublish('c');
  pub.publish('a', item('a', 3));
  pub.signalRestarted();
  t.same(pub.snapshot(), {
    epoch: pub.epoch,
    seq: 6,
    restarted: 1,
    persistent: false,
    entries: [['a', '{"name":"a","n":3}'], ['b', '{"name":"b","n":2,"tags":["t"]}']],
  });
  t.same(pub.info(), { type: 'Item', keys: 2, epoch: pub.epoch, seq: 6, restarted: 1, persistent: false });
  t.equal(rig(Saved).pub.snapshot().persistent, true);
});

t.test('a closed publication refuses changes but can still be read', async (t) => {
  const { pub, sent } = rig();
  pub.publish('a', item('a'));
  pub.close();
  t.equal(pub.isClosed, true);
  t.throws(() => pub.publish('b', item('b')), ClosedError);
  t.throws(() => pub.unpublish('a'), ClosedError);
  t.throws(() => pub.signalRestarted(), ClosedError);
  t.equal(sent.length, 1);
  t.same(pub.get('a'), item('a'));
});

t.test('persistence', async (t) => {
  t.test('the value is on disk before the update is sent', async (t) => {
    const store = tmpStore(t);
    const seenAtSend: Array<[number, string | undefined]> = [];
    const { pub } = rig(Saved, store, (m) => {
      const file = store.fileFor(m.key);
      seenAtSend.push([m.op, fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined]);
    });
    pub.publish('a/b', item('x', 1));
    pub.publish('a/b', item('x', 2));
    pub.unpublish('a/b');
    t.same(seenAtSend, [
      [OP_SET, '{"key":"a/b","value":{"name":"x","n":1}}\n'],
      [OP_SET, '{"key":"a/b","value":{"name":"x","n":2}}\n'],
      [OP_DEL, undefined],
    ], 'SET finds its value written, DEL finds the file gone');
  });

  t.test('an equal value is not written again', async (t) => {
    const store = tmpStore(t);
    const { pub } = rig(Saved, store);
    pub.publish('k', item('x'));
    fs.rmSync(store.fileFor('k'));
    t.equal(pub.publish('k', item('x')), false);
    t.notOk(fs.existsSync(store.fileFor('k')), 'no write for an unchanged value');
  });

  t.test('when the write fails, nothing is sent and nothing changes', async (t) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-pub-'));
    t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
    const { pub, sent } = rig(Saved, new PersistentStore(path.join(root, 'file', 'Saved')));
    fs.writeFileSync(path.join(root, 'file'), ''); // the store's parent is now a file
    t.throws(() => pub.publish('k', item('x')), /ENOTDIR|EEXIST/);
    t.same(sent, []);
    t.equal(pub.get('k'), undefined);
    t.equal(pub.seq, 0);
  });

  t.test('a new instance reloads the store', async (t) => {
    const store = tmpStore(t);
    const first = rig(Saved, store);
    first.pub.publish('a', item('a', 1));
    first.pub.publish('b/ü', item('b', 2, { tags: ['t'] }));
    first.pub.publish('gone', item('g'));
    first.pub.unpublish('gone');
    first.pub.signalRestarted();
    first.pub.close();

    const second = rig(Saved, store);
    const { pub, sent } = second;
    t.same(Object.fromEntries(pub.getAll()), { a: item('a', 1), 'b/ü': item('b', 2, { tags: ['t'] }) });
    t.ok(Object.isFrozen(pub.get('a')), 'reloaded values are frozen too');
    t.not(pub.epoch, first.pub.epoch, 'a new epoch');
    t.equal(pub.seq, 0);
    t.equal(pub.restarted, 0, 'the new instance has not signalled yet');
    t.same(sent, [], 'loading sends nothing');
    t.same(pub.snapshot().entries.sort(), [['a', '{"name":"a","n":1}'], ['b/ü', '{"name":"b","n":2,"tags":["t"]}']]);
    t.equal(pub.publish('a', item('a', 1)), false, 'republishing a reloaded value is a no-op');
    t.equal(pub.publish('a', item('a', 5)), true);
    t.equal(sent[0]?.seq, 1);
    t.ok(second.lines.some((l) => l.level === 'debug' && l.keys === 2), 'logs how many keys it loaded');
  });

  t.test('corrupt files are moved aside and reported', async (t) => {
    const store = tmpStore(t);
    rig(Saved, store).pub.publish('good', item('g'));
    const bad = path.join(store.dir, 'bad.json');
    fs.writeFileSync(bad, '{"key":"bad","value":{"name":"b",');
    const noValue = path.join(store.dir, 'novalue.json');
    fs.writeFileSync(noValue, '{"key":"novalue"}');

    const { pub, lines } = rig(Saved, store);
    t.same(pub.keys(), ['good']);
    t.notOk(fs.existsSync(bad));
    t.ok(fs.existsSync(bad + '.corrupt'), 'moved to .corrupt');
    t.ok(fs.existsSync(noValue + '.corrupt'));
    const errors = lines.filter((l) => l.level === 'error' && /unreadable/.test(String(l.msg)));
    t.same(errors.map((l) => l.file).sort(), [bad, noValue].sort(), 'each is reported with its file');
    t.ok(errors.every((l) => l.collection === 'Saved' && typeof l.error === 'string' && l.error !== ''));

    const again = rig(Saved, store);
    t.same(again.lines.filter((l) => l.level === 'error'), [], 'reported once: the next load is clean');
  });

  t.test('persisted values that fail the schema are ignored and reported', async (t) => {
    const store = tmpStore(t);
    store.write('old', '{"name":"o","n":-5}');
    store.write('ok', '{"name":"k","n":5}');
    const { pub, lines } = rig(Saved, store);
    t.same(pub.keys(), ['ok']);
    const err = lines.find((l) => l.level === 'error' && l.key === 'old');
    t.ok(err, 'reported');
    t.match(err?.problems, [/\/n: /]);
    t.ok(fs.existsSync(store.fileFor('old')), 'left on disk (a newer schema may accept it)');
  });
});
