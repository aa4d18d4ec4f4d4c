// The queue's decisions: drops over the quota (oldest first, outside the published
// window, never the newest), the exact droppedBefore they leave on the next kept
// batch, the window sliding as acks come, and what a restart finds on disk.
import t from 'tap';
import { droppedBefore, mergeDropped, planQuota, planRestart, planWindow, quotaReason, rebuiltNextSeq, windowSeqs, type Dropped, type Queued } from '../../agents/logmanager/queue-plan';

const MiB = 1024 * 1024;
const q = (seq: number, lines = 100, bytes = 100_000, own?: Dropped): Queued => ({ seq, bytes, lines, firstAt: `t${seq}`, ...(own ? { own } : {}) });
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

t.test('under the quota nothing is dropped', async (t) => {
  const plan = planQuota(range(1, 10).map((s) => q(s)), {}, MiB, 4);
  t.same(plan.drop, []);
  t.same(plan.carried, {});
});

t.test('over the quota: the oldest outside the window go, and the next kept batch carries their count', async (t) => {
  const queue = range(1, 12).map((s) => q(s, 10 * s)); // 1.2 MB over a 1 MiB quota
  const plan = planQuota(queue, {}, MiB, 4);
  t.same(plan.drop, [5, 6], 'the two oldest after the window');
  t.same(plan.carried, { 7: { lines: 50 + 60, batches: 2, reason: quotaReason(MiB) } }, 'counted on batch 7');
  t.equal(plan.droppedLines, 110);
  t.equal(plan.droppedBatches, 2);
  t.equal(quotaReason(MiB), 'log queue over its quota (1 MiB) while the controller was unreachable');
});

t.test('drops carry what the dropped batches carried, and their own relay drops', async (t) => {
  const relay = { lines: 7, batches: 0, reason: 'agent buffer full while logmanager was away' };
  // Round 1 dropped 5 and 6 onto 7; now 7 (which also had relay drops) and 8 must go too.
  const queue = [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14].map((s) => q(s, 100, 100_000, s === 7 ? relay : undefined));
  const carried = { 7: { lines: 200, batches: 2, reason: quotaReason(MiB) } };
  const plan = planQuota(queue, carried, MiB, 4);
  t.same(plan.drop, [7, 8]);
  t.same(plan.carried[9], { lines: 200 + 7 + 100 + 100, batches: 2 + 2, reason: `${relay.reason}; ${quotaReason(MiB)}` },
    'everything lost before 9: the earlier drops, the relay\'s, and the two batches');
  t.notOk(7 in plan.carried, 'nothing left on a dropped batch');
  t.equal(plan.droppedLines, 200, 'only the lines of the batches dropped now are new drops');
});

t.test('the window and the newest batch are never dropped, even when the quota cannot be met', async (t) => {
  const queue = range(1, 6).map((s) => q(s, 1, 400_000));
  const plan = planQuota(queue, {}, MiB, 4);
  t.same(plan.drop, [5], 'only what is outside the window and not the newest');
  t.same(plan.carried, { 6: { lines: 1, batches: 1, reason: quotaReason(MiB) } });
  t.same(planQuota(range(1, 5).map((s) => q(s, 1, 400_000)), {}, MiB, 4).drop, [], 'nothing droppable');
});

t.test('lines lost add up exactly over rounds of drops (produced = kept + counted)', async (t) => {
  let queue: Queued[] = [];
  let carried: Record<number, Dropped> = {};
  let produced = 0;
  let lost = 0;
  /** Lines the controller got or was told were lost. */
  let accounted = 0;
  for (let seq = 1; seq <= 200; seq++) {
    const lines = (seq * 37) % 101 + 1;
    produced += lines;
    queue.push(q(seq, lines, 20_000 + ((seq * 7919) % 50_000)));
    const plan = planQuota(queue, carried, MiB, 4);
    carried = plan.carried;
    lost += plan.droppedLines;
    queue = queue.filter((b) => !plan.drop.includes(b.seq));
    if (seq % 50 === 0) {
      // The controller comes back for a while: the window is sent, with what it says was lost before it.
      for (const b of queue.slice(0, 4)) {
        accounted += b.lines + (droppedBefore(b, carried)?.lines ?? 0);
        delete carried[b.seq];
      }
      queue = queue.slice(4);
    }
  }
  const kept = queue.reduce((n, b) => n + b.lines, 0);
  const counted = queue.reduce((n, b) => n + (droppedBefore(b, carried)?.lines ?? 0), 0);
  t.ok(lost > 0, 'some rounds dropped');
  t.equal(accounted + kept + counted, produced, 'every line was sent, is in a kept batch, or is in a droppedBefore');
});

t.test('mergeDropped sums and keeps each reason once', async (t) => {
  const a = { lines: 1, batches: 1, reason: 'x' };
  const b = { lines: 2, batches: 0, reason: 'y' };
  t.same(mergeDropped(a, b), { lines: 3, batches: 1, reason: 'x; y' });
  t.same(mergeDropped(mergeDropped(a, b), a), { lines: 4, batches: 2, reason: 'x; y' });
  t.equal(mergeDropped(undefined, a), a);
  t.equal(mergeDropped(a, undefined), a);
});

t.test('the window: the W oldest are published, and it slides as acks remove them', async (t) => {
  let queue = range(3, 10).map((s) => q(s));
  t.same(windowSeqs(queue, 4), [3, 4, 5, 6]);
  t.same(planWindow(queue, [], 4), { publish: [3, 4, 5, 6], unpublish: [] }, 'at start');
  queue = queue.filter((b) => b.seq !== 4); // ack of 4 (out of order)
  t.same(planWindow(queue, [3, 5, 6], 4), { publish: [7], unpublish: [] }, 'the next one joins');
  t.same(planWindow(range(1, 2).map((s) => q(s)), [1, 2, 3], 4), { publish: [], unpublish: [3] }, 'a published batch no longer queued goes');
  t.same(planWindow([], [], 4), { publish: [], unpublish: [] });
});

t.test('restart: what a crash left is cleaned up or batched again, by the ledger\'s nextSeq', async (t) => {
  const carried = { 3: { lines: 1, batches: 1, reason: 'r' }, 9: { lines: 1, batches: 1, reason: 'r' } };
  // A close of seq 12 wrote 12 and 13 and crashed before its ledger write: the closing file is batched again.
  t.same(planRestart({ queue: [3, 4, 5, 12, 13], closing: [12] }, { nextSeq: 12, dropping: [], carried }), {
    deleteQueue: [12, 13], deleteClosing: [], rebatch: [12], staleCarried: [9],
  });
  // The same close crashed after its ledger write: committed, only the closing file goes.
  t.same(planRestart({ queue: [3, 4, 5, 12, 13], closing: [12] }, { nextSeq: 14, dropping: [], carried }), {
    deleteQueue: [], deleteClosing: [12], rebatch: [], staleCarried: [9],
  });
  // Drops written to the ledger, files not yet deleted.
  t.same(planRestart({ queue: [1, 2, 3, 4, 5, 6], closing: [] }, { nextSeq: 7, dropping: [5], carried: { 6: { lines: 1, batches: 1, reason: 'r' } } }), {
    deleteQueue: [5], deleteClosing: [], rebatch: [], staleCarried: [],
  });
  t.same(planRestart({ queue: [], closing: [] }, { nextSeq: 1, dropping: [], carried: {} }), { deleteQueue: [], deleteClosing: [], rebatch: [], staleCarried: [] }, 'first start');
});

t.test('a rebuilt ledger: seqs jump to the time, so none the controller may hold is used again', async (t) => {
  const now = Date.parse('2026-05-06T07:00:00.500Z');
  const fromTime = Math.floor(now / 1000) * 100;
  t.equal(rebuiltNextSeq([], now), fromTime, 'an empty queue does not start again at 1');
  t.equal(String(fromTime).length, 12, '12 digits, as batch keys are');
  t.equal(rebuiltNextSeq([3, 9], now), fromTime, 'past a small queue');
  t.equal(rebuiltNextSeq([fromTime + 5], now), fromTime + 6, 'past a queue already past the time (an earlier rebuild, a clock set back)');
});

t.test('a rebuilt ledger deletes no queued batch, and batches every closing file again', async (t) => {
  const disk = { queue: [3, 4, 5, 12, 13], closing: [14, 12] };
  const ledger = { nextSeq: rebuiltNextSeq(disk.queue, Date.now()), dropping: [], carried: {} };
  t.same(planRestart(disk, ledger, true), { deleteQueue: [], deleteClosing: [], rebatch: [12, 14], staleCarried: [] });
});
