import t from 'tap';
import { Fifo } from '../../lib/fifo';

t.test('first in, first out, across compactions and while growing', async (t) => {
  const q = new Fifo<number>();
  const out: number[] = [];
  let next = 0;
  // Push 3, take 2, many times: the array is compacted while items still wait.
  for (let round = 0; round < 2000; round++) {
    for (let i = 0; i < 3; i++) q.push(next++);
    for (let i = 0; i < 2; i++) out.push(q.shift() as number);
  }
  t.equal(q.length, 2000);
  for (let x = q.shift(); x !== undefined; x = q.shift()) out.push(x);
  t.equal(q.length, 0);
  t.same(out, Array.from({ length: 6000 }, (_, i) => i), 'every item once, in order');
  t.equal(q.shift(), undefined, 'empty');
  q.push(7);
  q.clear();
  t.equal(q.length, 0);
});
