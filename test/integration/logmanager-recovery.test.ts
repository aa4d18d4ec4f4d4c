// The queue on a real disk, through the crash windows an integration test cannot
// hit on purpose: a close that renamed its collect file and wrote a queue file but
// died before its ledger write; drops written to the ledger but not yet deleted; a
// torn last record; an unreadable, wrongly-shaped or lost ledger. Each restart ends
// with every line once, and seqs never used twice.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { LogQueue } from '../../agents/logmanager/log-queue';
import { QueueStore } from '../../agents/logmanager/queue-store';
import { Logger } from '../../lib/log';
import { LogBatchCollection, type LogBatch } from '../../pubsub/collections/logs';
import { Publication } from '../../pubsub/publication';

const log = new Logger({ source: 'test', level: 'error', sink: { write: () => undefined } });

function rig(dir: string) {
  const store = new QueueStore(dir);
  const publication = new Publication(LogBatchCollection, 'logmanager', { send: () => undefined }, log);
  const timers: NodeJS.Timeout[] = [];
  const queue = new LogQueue({ store, publication, log, setTimeout: (fn, ms) => { const h = setTimeout(fn, ms); timers.push(h); return h; } });
  return {
    store, publication, queue,
    /** What is published, unzipped: seq -> messages. */
    published(): Map<number, string[]> {
      const out = new Map<number, string[]>();
      for (const v of publication.getAll().values()) {
        const b = v as LogBatch;
        out.set(b.seq, gunzipSync(Buffer.from(b.gzip, 'base64')).toString().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg));
      }
      return out;
    },
    /** Acknowledges everything published until the queue is empty; returns the messages in seq order. */
    drain(): string[] {
      const got: string[] = [];
      for (let round = 0; round < 100 && publication.size > 0; round++) {
        const [seq, msgs] = [...this.published().entries()].sort((a, b) => a[0] - b[0])[0]!;
        got.push(...msgs);
        queue.ack(seq, new Date().toISOString());
      }
      return got;
    },
    stop(): void { queue.stop(); for (const h of timers) clearTimeout(h); },
  };
}

const line = (msg: string): string => JSON.stringify({ time: '2026-05-06T07:00:00.000Z', source: 'zedagent', level: 'info', msg });
const tmp = (t: Test): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-logq-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};

t.test('a close that died before its ledger write is batched again, once', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (const m of ['a1', 'a2']) a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z');
  a.queue.closeBatch(); // seq 1, committed
  for (const m of ['b1', 'b2', 'b3']) a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z');
  a.queue.flush();
  // What closeBatch does up to its commit point: rename the collect file, write the queue file for seq 2...
  a.store.rotateCollect(2);
  a.store.writeBatch({ seq: 2, firstAt: 'x', lastAt: 'x', lines: 3, rawBytes: 1 }, Buffer.from('not even gzip'));
  a.stop(); // ...and "dies": no ledger write with nextSeq 3

  const b = rig(dir);
  b.queue.recover();
  b.queue.closeBatch();
  t.same([...b.published().keys()].sort(), [1, 2], 'seq 2 again, from the closing file');
  t.same(b.drain(), ['a1', 'a2', 'b1', 'b2', 'b3'], 'every line once, in order');
  t.same(fs.readdirSync(dir).sort(), ['collect.ndjson', 'ledger.json', 'queue', 'spool'], 'no closing file left');
  b.queue.addLine(line('c1'), '2026-05-06T07:00:00.000Z');
  b.queue.closeBatch();
  t.same([...b.published().keys()], [3], 'seqs go on');
  b.stop();
});

t.test('a torn last record is cut; the records before it are batched at start', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (const m of ['x1', 'x2', 'x3']) a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z');
  a.stop();
  const collect = path.join(dir, 'collect.ndjson');
  fs.appendFileSync(collect, `L ${line('torn').slice(0, 20)}`);
  const b = rig(dir);
  b.queue.recover();
  b.queue.closeBatch();
  t.same(b.drain(), ['x1', 'x2', 'x3']);
  t.equal(fs.readFileSync(collect, 'utf8'), '', 'the collect file starts clean');
  b.stop();
});

t.test('drops written to the ledger but not yet deleted are deleted at start, and counted once', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (let s = 1; s <= 6; s++) {
    a.queue.addLine(line(`m${s}`), '2026-05-06T07:00:00.000Z');
    a.queue.closeBatch();
  }
  a.stop();
  const ledgerPath = path.join(dir, 'ledger.json');
  const ledger = JSON.parse(fs.readFileSync(ledgerPath, 'utf8')) as Record<string, unknown>;
  // As if a quota drop of 5 had written its ledger and died before deleting the file.
  fs.writeFileSync(ledgerPath, JSON.stringify({ ...ledger, dropping: [5], carried: { 6: { lines: 1, batches: 1, reason: 'quota' } } }));
  const b = rig(dir);
  b.queue.recover();
  const got: LogBatch[] = [];
  for (let i = 0; i < 10 && b.publication.size; i++) {
    const first = [...b.publication.getAll().values()].map((v) => v as LogBatch).sort((x, y) => x.seq - y.seq)[0]!;
    got.push(first);
    b.queue.ack(first.seq, 'now');
  }
  t.same(got.map((g) => g.seq), [1, 2, 3, 4, 6], 'batch 5 is gone');
  t.same(got[4]?.droppedBefore, { lines: 1, batches: 1, reason: 'quota' }, 'and counted on 6');
  t.same(fs.readdirSync(path.join(dir, 'queue')), []);
  b.stop();
});

t.test('an ack seen for a batch already deleted changes nothing', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  a.queue.addLine(line('once'), '2026-05-06T07:00:00.000Z');
  a.queue.closeBatch();
  a.queue.ack(1, 'now');
  a.queue.ack(1, 'now');
  a.queue.ack(99, 'now');
  const s = a.queue.status();
  t.same([s.sentBatches, s.sentLines, s.queuedBatches], [1, 1, 0]);
  a.stop();
});

t.test('an unreadable ledger is moved aside, rebuilt from the queue, and reported', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (const m of ['k1', 'k2']) { a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z'); a.queue.closeBatch(); }
  a.stop();
  fs.writeFileSync(path.join(dir, 'ledger.json'), '{"nextSeq": "three"');
  const b = rig(dir);
  b.queue.recover();
  t.match(b.queue.status().error, /log ledger unreadable.*ledger\.json.*moved to/);
  t.ok(fs.readdirSync(dir).some((n) => n.startsWith('ledger.json.corrupt-')), 'the bad file is kept for a person to see');
  b.queue.addLine(line('k3'), '2026-05-06T07:00:00.000Z');
  b.queue.closeBatch();
  t.same([...b.published().keys()].sort((x, y) => x - y), [1, 2, timeSeq(b)], 'the next batch\'s seq jumps to the time');
  t.same(b.drain(), ['k1', 'k2', 'k3'], 'the queued batches survive and seqs do not collide');
  b.stop();
});

/** The seq of the batch published last (the newest). */
function timeSeq(r: ReturnType<typeof rig>): number {
  return Math.max(...r.published().keys());
}

t.test('a rebuilt ledger with an empty queue does not start seqs again at 1 (the controller holds those)', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (const m of ['s1', 's2', 's3']) { a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z'); a.queue.closeBatch(); }
  t.same(a.drain(), ['s1', 's2', 's3'], 'seqs 1 to 3 stored at the controller');
  a.stop();
  fs.writeFileSync(path.join(dir, 'ledger.json'), 'not json');
  const before = Math.floor(Date.now() / 1000) * 100;
  const b = rig(dir);
  b.queue.recover();
  b.queue.addLine(line('s4'), '2026-05-06T07:00:00.000Z');
  b.queue.closeBatch();
  const seq = timeSeq(b);
  t.ok(seq >= before && seq <= Math.floor(Date.now() / 1000) * 100, `seq ${seq} is the time times 100, not 1`);
  t.match(b.queue.status().error, new RegExp(`seqs go on from ${seq}`), 'the status says where seqs go on');
  t.same(b.drain(), ['s4']);
  b.stop();
  const c = rig(dir);
  c.queue.recover();
  c.queue.addLine(line('s5'), '2026-05-06T07:00:00.000Z');
  c.queue.closeBatch();
  t.same([...c.published().keys()], [seq + 1], 'and go on from there after a normal restart');
  t.equal(c.queue.status().error, undefined, 'with nothing to report');
  c.stop();
});

t.test('a rebuilt ledger keeps every queued batch and batches a closing file again', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (const m of ['q1', 'q2']) { a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z'); a.queue.closeBatch(); }
  for (const m of ['c1', 'c2']) a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z');
  a.queue.flush();
  a.store.rotateCollect(3); // a close that died before its commit...
  a.stop();
  fs.rmSync(path.join(dir, 'ledger.json')); // ...and the ledger lost (read as a first start, all were deleted)
  const b = rig(dir);
  b.queue.recover();
  t.match(b.queue.status().error, /ledger\.json is missing while 3 batch files are on disk/, 'a ledger lost beside batch files is reported');
  t.same(b.drain(), ['q1', 'q2', 'c1', 'c2'], 'nothing lost');
  t.same(fs.readdirSync(dir).filter((n) => n.startsWith('collect.0')), [], 'the closing file is gone once batched');
  b.stop();
});

t.test('a ledger of valid JSON but the wrong shape is set aside and rebuilt, not a crash at every start', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (const m of ['w1', 'w2']) { a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z'); a.queue.closeBatch(); }
  a.stop();
  const ledgerPath = path.join(dir, 'ledger.json');
  const good = JSON.parse(fs.readFileSync(ledgerPath, 'utf8')) as Record<string, unknown>;
  const shapes: Array<[string, Record<string, unknown>, RegExp]> = [
    ['cursors: null', { ...good, cursors: null }, /field \/cursors/],
    ['totals.sentLines a string', { ...good, totals: { sentLines: 'many' } }, /field \/totals\/sentLines/],
    ['dropping: {}', { ...good, dropping: {} }, /field \/dropping/],
    ['carried under a word', { ...good, carried: { six: { lines: 1, batches: 1, reason: 'r' } } }, /field \/carried/],
  ];
  for (const [what, value, field] of shapes) {
    fs.writeFileSync(ledgerPath, JSON.stringify(value));
    const b = rig(dir);
    t.doesNotThrow(() => b.queue.recover(), `${what}: logmanager starts`);
    t.match(b.queue.status().error, field, `${what}: the status names the field`);
    t.same([...b.published().keys()].sort((x, y) => x - y), [1, 2], `${what}: the queue survives`);
    b.stop();
  }
  t.equal(fs.readdirSync(dir).filter((n) => n.startsWith('ledger.json.corrupt-')).length >= 1, true, 'the bad files are kept for a person to see');
});

t.test('lines a relay reports dropped are counted in the ledger at the next sync, like every counter', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  a.queue.addDropped({ lines: 7, batches: 0, reason: 'agent buffer full' });
  a.queue.sync();
  const ledger = JSON.parse(fs.readFileSync(path.join(dir, 'ledger.json'), 'utf8')) as { totals: { droppedLines: number } };
  t.equal(ledger.totals.droppedLines, 7);
  a.stop();
});

t.test('an unreadable queue file is set aside and reported; the others go on', async (t) => {
  const dir = tmp(t);
  const a = rig(dir);
  a.queue.recover();
  for (const m of ['g1', 'g2']) { a.queue.addLine(line(m), '2026-05-06T07:00:00.000Z'); a.queue.closeBatch(); }
  a.stop();
  fs.writeFileSync(path.join(dir, 'queue', '000000000001.batch'), 'garbage without a header line');
  const b = rig(dir);
  b.queue.recover();
  t.match(b.queue.status().error, /queued log batch 1 unreadable.*000000000001\.batch\.unreadable/);
  t.ok(fs.existsSync(path.join(dir, 'queue', '000000000001.batch.unreadable')));
  t.same(b.drain(), ['g2']);
  b.stop();
});
