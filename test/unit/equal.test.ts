import t from 'tap';
import { deepFreeze, jsonEqual } from '../../pubsub/equal';

t.test('jsonEqual compares JSON values, not key order or identity', async (t) => {
  t.ok(jsonEqual({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }));
  t.notOk(jsonEqual({ a: 1 }, { a: 1, b: undefined as unknown as number }));
  t.notOk(jsonEqual([1, 2], [2, 1]));
  t.notOk(jsonEqual({ a: [] }, { a: {} }));
  t.notOk(jsonEqual(null, {}));
});

t.test('deepFreeze makes nested values immutable', async (t) => {
  const v = deepFreeze({ a: { b: [1] } });
  t.throws(() => { (v.a.b as number[]).push(2); });
  t.equal(Object.isFrozen(v.a), true);
});
