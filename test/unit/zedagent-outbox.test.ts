// The outbox: latest message per object, kept until acknowledged, on disk when
// not acknowledged quickly, sent again after a restart or a broken link.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { Outbox, type OutMessage } from '../../agents/zedagent/outbox';
import { SeqAllocator } from '../../agents/zedagent/seq-allocator';

const msg = (topic: string, payload: string): OutMessage => ({ topic, payload, retain: true });

/** A sender whose acknowledgements the test releases by hand. */
function manualSender() {
  const pending: Array<{ msg: OutMessage; ack: () => void; fail: () => void }> = [];
  const sender = (m: OutMessage) => new Promise<void>((resolve, reject) => pending.push({ msg: m, ack: resolve, fail: () => reject(new Error('x')) }));
  return { sender, pending };
}

const tick = () => new Promise((r) => setImmediate(r));

t.test('a newer value replaces an unsent older one; an ack of the old one keeps the new one', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const box = new Outbox(dir, { maxInflight: 4, flushAfterMs: 10_000 });
  box.put('app/a', msg('t/a', 'a1'));
  box.put('app/a', msg('t/a', 'a2'));
  t.equal(box.pending, 1, 'one entry per object');
  const s = manualSender();
  box.attach(s.sender);
  t.same(s.pending.map((p) => p.msg.payload), ['a2'], 'only the latest is sent');
  box.put('app/a', msg('t/a', 'a3')); // changes while a2 is in flight
  s.pending[0]!.ack();
  await tick();
  t.equal(box.pending, 1, 'a3 is still owed');
  t.same(s.pending.map((p) => p.msg.payload), ['a2', 'a3'], 'and goes next');
  s.pending[1]!.ack();
  await tick();
  t.equal(box.pending, 0);
});

t.test('unacknowledged messages survive a restart and are sent after it; in-flight is bounded', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const box = new Outbox(dir, { maxInflight: 2, flushAfterMs: 10_000 });
  for (let i = 0; i < 5; i++) box.put(`app/${i}`, msg(`t/${i}`, `v${i}`));
  box.flush(); // as at shutdown
  t.equal(fs.readdirSync(dir).length, 5, 'one file per unsent object');
  const again = new Outbox(dir, { maxInflight: 2, flushAfterMs: 10_000, priority: (k) => (k === 'app/4' ? 0 : 1) });
  t.equal(again.pending, 5, 'all five back after the restart');
  const s = manualSender();
  again.attach(s.sender);
  t.equal(s.pending.length, 2, 'at most maxInflight at once');
  t.equal(s.pending[0]!.msg.payload, 'v4', 'priority first');
  // The link breaks with two in flight: nothing is lost, they go again on the next link.
  again.detach();
  s.pending[0]!.ack(); // a late ack from the dead link changes nothing
  await tick();
  t.equal(again.pending, 5);
  const s2 = manualSender();
  again.attach(s2.sender);
  for (let round = 0; round < 5 && again.pending > 0; round++) {
    for (const p of s2.pending.splice(0)) p.ack();
    await tick();
    await tick();
  }
  t.equal(again.pending, 0, 'all delivered over the new link');
  t.equal(fs.readdirSync(dir).length, 0, 'and their files removed');
});

t.test('messages acknowledged quickly never touch the disk; slow ones are written after flushAfterMs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const box = new Outbox(dir, { maxInflight: 8, flushAfterMs: 30 });
  const s = manualSender();
  box.attach(s.sender);
  box.put('app/fast', msg('t/f', 'f'));
  box.put('app/slow', msg('t/s', 's'));
  s.pending[0]!.ack();
  await new Promise((r) => setTimeout(r, 80));
  t.equal(fs.readdirSync(dir).length, 1, 'only the unacknowledged one is on disk');
  s.pending[1]!.ack();
  await tick();
  t.equal(fs.readdirSync(dir).length, 0);
});

t.test('sequence numbers grow across restarts with one disk write per block', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'seq-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const a = SeqAllocator.at(dir);
  const first = [a.take(), a.take(), a.take()];
  t.same(first, [0, 1, 2]);
  const b = SeqAllocator.at(dir); // a restart (or a crash) mid-block
  const next = b.take();
  t.ok(next > 2, `after a restart the sequence continues above what was used (${next})`);
});
