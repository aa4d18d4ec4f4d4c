// The relay's bounded buffer: lines wait until logmanager acknowledges them; past
// the bound the oldest unsent go, counted, and the count travels as a marker just
// before the next record; a lost connection sends the unacknowledged again.
import t from 'tap';
import { RELAY_DROP_REASON, RelayBuffer, dropMarker } from '../../lib/log-relay-buffer';

const line = (i: number): string => `{"msg":"l${i}"}\n`;
const records = (text: string): string[] => text.split('\n').filter(Boolean).map((r) => r + '\n');
/** What logmanager would store from a stream of records: the lines, and the drops with their position. */
function replay(text: string): string[] {
  return records(text).map((r) => (r.startsWith('{"ctl":"dropped"') ? `dropped ${(JSON.parse(r) as { lines: number }).lines}` : (JSON.parse(r) as { msg: string }).msg));
}

t.test('lines go out in order and leave the buffer when acknowledged', async (t) => {
  const b = new RelayBuffer(10, 1 << 20);
  for (let i = 1; i <= 3; i++) b.push(line(i));
  t.equal(b.lines, 3);
  t.same(replay(b.take()), ['l1', 'l2', 'l3']);
  t.equal(b.take(), '', 'nothing more to send');
  t.equal(b.lines, 3, 'still held until acknowledged');
  b.ack(2);
  t.equal(b.lines, 1);
  b.ack(2);
  t.equal(b.lines, 1, 'an ack repeated changes nothing');
  b.ack(3);
  t.ok(b.empty);
});

t.test('take() stops near its byte budget', async (t) => {
  const b = new RelayBuffer(100, 1 << 20);
  for (let i = 1; i <= 10; i++) b.push(line(i));
  const first = b.take(30); // 13 bytes a record: the third passes the budget, and is the last
  t.same(replay(first), ['l1', 'l2', 'l3'], 'records until the budget is passed');
  t.same(replay(b.take()), ['l4', 'l5', 'l6', 'l7', 'l8', 'l9', 'l10']);
});

t.test('past the bound the oldest unsent lines are dropped and counted just before the next record', async (t) => {
  const b = new RelayBuffer(5, 1 << 20);
  for (let i = 1; i <= 12; i++) b.push(line(i));
  t.equal(b.lines, 5);
  t.equal(b.droppedTotal, 7);
  t.same(replay(b.take()), ['dropped 7', 'l8', 'l9', 'l10', 'l11', 'l12']);
  t.equal(dropMarker(7), `{"ctl":"dropped","lines":7,"reason":"${RELAY_DROP_REASON}"}\n`);
});

t.test('lines in flight are never dropped; the bound counts them', async (t) => {
  const b = new RelayBuffer(4, 1 << 20);
  for (let i = 1; i <= 3; i++) b.push(line(i));
  b.take(); // l1..l3 in flight
  for (let i = 4; i <= 8; i++) b.push(line(i));
  t.equal(b.lines, 4);
  t.same(replay(b.take()), ['dropped 4', 'l8'], 'the drops sit between what was in flight and what follows');
});

t.test('the byte bound works like the line bound', async (t) => {
  const b = new RelayBuffer(1000, 50);
  for (let i = 1; i <= 10; i++) b.push(line(i)); // 13-14 bytes each
  t.ok(b.bytes <= 50, `${b.bytes} bytes held`);
  t.same(replay(b.take()), ['dropped 7', 'l8', 'l9', 'l10']);
});

t.test('a lost connection: the unacknowledged are sent again first, markers included', async (t) => {
  const b = new RelayBuffer(4, 1 << 20);
  for (let i = 1; i <= 6; i++) b.push(line(i));
  const first = b.take();
  t.same(replay(first), ['dropped 2', 'l3', 'l4', 'l5', 'l6']);
  b.ack(2); // the marker and l3 stored
  b.push(line(7));
  b.requeue();
  t.same(replay(b.take()), ['l4', 'l5', 'l6', 'l7'], 'from the first unacknowledged record');
  b.ack(4); // a new connection counts from zero
  t.ok(b.empty);
});

t.test('a requeued marker dropped again keeps its count at the new position', async (t) => {
  const b = new RelayBuffer(3, 1 << 20);
  for (let i = 1; i <= 5; i++) b.push(line(i));
  b.take(); // dropped 2, l3, l4, l5 in flight
  b.requeue(); // connection lost before any ack
  for (let i = 6; i <= 8; i++) b.push(line(i)); // the oldest unsent now: the marker, then l3...
  t.same(replay(b.take()), ['dropped 5', 'l6', 'l7', 'l8'], 'the earlier 2 and the 3 lines after them');
  t.equal(b.droppedTotal, 5);
});

t.test('pending() is every unacknowledged record, for the spool file', async (t) => {
  const b = new RelayBuffer(3, 1 << 20);
  for (let i = 1; i <= 4; i++) b.push(line(i));
  t.equal(b.take(dropMarker(1).length + 1), dropMarker(1) + line(2), 'the marker and l2 in flight');
  b.push(line(5)); // drops l3
  t.same(replay(b.pending()), ['dropped 1', 'l2', 'dropped 1', 'l4', 'l5']);
  t.same(replay(b.take()), ['dropped 1', 'l4', 'l5'], 'pending() takes nothing out');
});
