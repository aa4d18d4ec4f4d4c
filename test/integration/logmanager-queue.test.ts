// The disk queue through the bus, with the test standing in for zedagent. The
// "controller" away (no acks) under the quota: every line waits and then arrives.
// (c) Away over the quota: the queue grows to log.queue.max.mib, the
// oldest batches outside the published window are dropped, and the droppedBefore
// counts add up exactly to the lines lost, where they were lost; once acks resume
// everything kept arrives, in order. (d) logmanager stops with batches queued and
// lines in its collect file, whose last record a kill cut in half: after the
// restart nothing is lost, nothing repeated, and seqs go on from where they were.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { normTime } from '../../agents/logmanager/docker-lines';
import { LogManagerStatusCollection } from '../../pubsub/collections/logs';
import { waitUntil } from '../lib/wait';
import { docker, domainStatus, newAppId, numberedLines, removeDirs, runApp, startLogmanager, type LogmanagerRig } from '../lib/logmanager-helpers';

const WAIT_MS = 60_000; // a bound so a broken run ends, not a performance limit
const WINDOW = 4;

/** Docker's time of the container's last output line, once it is `last`. */
async function lastLineTime(id: string, last: RegExp): Promise<string> {
  let time = '';
  await waitUntil(async () => {
    const buf = await docker().getContainer(id).logs({ stdout: true, stderr: true, timestamps: true, tail: 1 }) as unknown as Buffer;
    const text = buf.subarray(8).toString('utf8');
    const sp = text.indexOf(' ');
    if (!last.test(text.slice(sp + 1))) return false;
    time = text.slice(0, sp);
    return true;
  }, 'the app printed its last line', WAIT_MS);
  return time;
}

/** logmanager's ledger says its batches hold the container's output up to `time` (used to wait, not asserted). */
function ledgerReached(rig: LogmanagerRig, containerId: string, time: string): boolean {
  try {
    const ledger = JSON.parse(fs.readFileSync(path.join(rig.h.dirs.persist, 'logmanager/ledger.json'), 'utf8')) as { cursors: Record<string, { t: string }> };
    return ledger.cursors[containerId]?.t === normTime(time);
  } catch {
    return false;
  }
}

const numberOf = (msg: string): number => Number(msg.split(' ')[1]);

t.test('controller away, under the quota: everything waits on disk and arrives, once, in order', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2', 'log.queue.max.mib': '4' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  rig.standIn.acking = false;
  const N = 3000;
  const app = await runApp(rig.h.settings.instance, `${numberedLines('u', N, 400)}; sleep 3600`);
  t.teardown(() => app.remove());
  const appId = newAppId();
  rig.domains.publish(appId, domainStatus(appId, 'outage', app.id));
  const last = await lastLineTime(app.id, new RegExp(`^u ${N} `));
  await waitUntil(() => ledgerReached(rig, app.id, last), 'every line batched', WAIT_MS);
  const held = await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => (s?.queuedBatches ?? 0) > WINDOW, 'more queued than published', WAIT_MS);
  t.equal(held!.droppedLines, 0, 'nothing dropped');
  t.equal(rig.standIn.received.size, WINDOW, 'only the window was published');

  rig.standIn.resume();
  await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => s?.queuedBatches === 0, 'all sent', WAIT_MS);
  t.same(rig.standIn.lines().map((l) => numberOf(l.msg)), Array.from({ length: N }, (_, i) => i + 1), 'every line, once, in order');
  t.ok([...rig.standIn.received.values()].every((r) => !r.batch.droppedBefore), 'no batch reports a loss');
});

t.test('controller away: the queue keeps to its quota and counts exactly what it dropped', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2', 'log.queue.max.mib': '1' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  rig.standIn.acking = false;
  // 400 random hex digits a line: about 200 bytes each compressed, so 12,000 lines are 2.3x the quota.
  const N = 12_000;
  const app = await runApp(rig.h.settings.instance, `${numberedLines('q', N, 400)}; sleep 3600`);
  t.teardown(() => app.remove());
  const appId = newAppId();
  rig.domains.publish(appId, domainStatus(appId, 'quota', app.id));
  const last = await lastLineTime(app.id, new RegExp(`^q ${N} `));
  await waitUntil(() => ledgerReached(rig, app.id, last), 'every line batched', WAIT_MS);

  const held = await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => (s?.droppedLines ?? 0) > 0, 'drops', WAIT_MS);
  t.ok(held!.queuedBytes <= held!.quotaBytes, `the queue holds ${held!.queuedBytes} bytes, within its quota of ${held!.quotaBytes}`);
  t.ok(held!.queuedBytes > held!.quotaBytes * 0.8, 'and is close to full');
  t.equal(rig.standIn.received.size, WINDOW, 'only the window was published');

  rig.standIn.resume();
  const done = await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => s?.queuedBatches === 0 && (s?.sentBatches ?? 0) > WINDOW, 'all kept batches sent', WAIT_MS);
  const seqs = [...rig.standIn.received.keys()].sort((a, b) => a - b);
  t.same(seqs.slice(0, WINDOW), [1, 2, 3, 4], 'the published window was kept');
  const lines = rig.standIn.lines();
  const nums = lines.map((l) => numberOf(l.msg));
  t.ok(nums.every((n, i) => i === 0 || n > (nums[i - 1] as number)), 'kept lines in order');
  t.equal(nums[nums.length - 1], N, 'the newest line kept');
  const batches = seqs.map((s) => rig.standIn.received.get(s)!.batch);
  const droppedLines = batches.reduce((n, b) => n + (b.droppedBefore?.lines ?? 0), 0);
  const droppedBatches = batches.reduce((n, b) => n + (b.droppedBefore?.batches ?? 0), 0);
  t.ok(droppedLines > 0, `${droppedLines} lines dropped`);
  t.equal(droppedLines, N - lines.length, 'droppedBefore adds up exactly to the lines lost');
  t.equal(droppedBatches, seqs[seqs.length - 1]! - seqs.length, 'and its batch counts to the gaps in seqs');
  t.equal(done!.droppedLines, N - lines.length, 'status agrees');
  // Each gap is counted on the batch right after it: the numbers missing there are its count.
  let prevLast = 0;
  for (const [i, s] of seqs.entries()) {
    const r = rig.standIn.received.get(s)!;
    const first = numberOf(r.lines[0]!.msg);
    const gap = i > 0 && s !== seqs[i - 1]! + 1;
    t.equal(r.batch.droppedBefore?.lines ?? 0, first - prevLast - 1, `batch ${s}: droppedBefore is the lines missing just before it`);
    if (gap) t.equal(r.batch.droppedBefore?.batches, s - seqs[i - 1]! - 1, `batch ${s}: and the batches`);
    if (gap) t.match(r.batch.droppedBefore?.reason, /log queue over its quota \(1 MiB\)/, 'with the reason');
    prevLast = numberOf(r.lines[r.lines.length - 1]!.msg);
  }
});

t.test('a restart with batches queued and a collect file cut mid-record: nothing lost, nothing repeated, seqs go on', async (t) => {
  let rig = await startLogmanager({ items: { 'timer.log.batch': '300' } });
  const dirs = rig.h.dirs;
  t.teardown(async () => { await rig.stop(); removeDirs(dirs); });
  rig.standIn.acking = false;
  // Big lines, so some batches close full (queued) and the rest wait in the open batch.
  const N = 1000;
  const app = await runApp(rig.h.settings.instance, `${numberedLines('r', N, 400)}; sleep 4; ${numberedLines('s', 100)}; sleep 3600`);
  t.teardown(() => app.remove());
  const appId = newAppId();
  rig.domains.publish(appId, domainStatus(appId, 'restart', app.id));
  const collect = path.join(dirs.persist, 'logmanager/collect.ndjson');
  await waitUntil(() => fs.existsSync(collect) && fs.readFileSync(collect, 'utf8').includes(`"msg":"r ${N} `), 'the last line in the collect file', WAIT_MS);
  const before = await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => (s?.queuedBatches ?? 0) >= 1, 'batches queued', WAIT_MS);
  const queuedBefore = before!.queuedBatches;
  const seqsBefore = [...rig.standIn.received.keys()];
  await rig.stop();

  // A kill in the middle of writing the last record: its second half never reached the file.
  const text = fs.readFileSync(collect, 'utf8');
  const lastRecord = text.lastIndexOf('\n', text.length - 2) + 1;
  fs.truncateSync(collect, Buffer.byteLength(text.slice(0, lastRecord + Math.floor((text.length - lastRecord) / 2))));

  rig = await startLogmanager({ dirs, items: { 'timer.log.batch': '0.2' } });
  rig.domains.publish(appId, domainStatus(appId, 'restart', app.id)); // domainmgr's status, as after its own restart
  await waitUntil(() => rig.standIn.lines().some((l) => l.msg.startsWith('s 100')), 'every line after the restart', WAIT_MS);
  await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => s?.queuedBatches === 0, 'the queue empty', WAIT_MS);
  const msgs = rig.standIn.lines().map((l) => l.msg.trimEnd().split(' ').slice(0, 2).join(' '));
  const want = [...Array.from({ length: N }, (_, i) => `r ${i + 1}`), ...Array.from({ length: 100 }, (_, i) => `s ${i + 1}`)];
  t.equal(msgs.length, want.length, 'as many lines as the app printed');
  t.same(msgs, want, 'each once, in order');
  const seqs = [...rig.standIn.received.keys()].sort((a, b) => a - b);
  t.same(seqs, seqs.map((_, i) => i + 1), 'seqs from 1 without gaps');
  t.ok(seqs.length > queuedBefore, `seqs went on after the ${queuedBefore} queued before the restart`);
  t.ok(seqsBefore.every((s) => s <= queuedBefore), 'the batches published before the restart were the queued ones');
});
