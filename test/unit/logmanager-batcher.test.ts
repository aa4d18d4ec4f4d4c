// The open batch: when it is due or full, and its compression into parts that
// each fit a LogBatch, in order, with the relays' drop count on the first part.
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { MAX_BATCH_LINES, OpenBatch, PART_MAX_GZIP, RatioEstimate, compressParts } from '../../agents/logmanager/batcher';

const line = (i: number, pad = ''): string => JSON.stringify({ time: `2026-05-06T07:00:00.${String(i % 1000).padStart(3, '0')}Z`, source: 'app', level: 'info', msg: `n ${i} ${pad}` });

t.test('an open batch is due after its timer, counted from its first line', async (t) => {
  const b = new OpenBatch();
  t.ok(b.empty);
  t.notOk(b.due(1000, 500), 'an empty batch is never due');
  b.add(line(1), 't', 100);
  b.add(line(2), 't', 400);
  t.notOk(b.due(599, 500));
  t.ok(b.due(600, 500));
  t.notOk(b.empty);
});

t.test('full at the line cap or the raw size', async (t) => {
  const b = new OpenBatch();
  for (let i = 0; i < MAX_BATCH_LINES - 1; i++) b.add('{}', 't', 0);
  t.notOk(b.full(1 << 30));
  b.add('{}', 't', 0);
  t.ok(b.full(1 << 30), 'line cap');
  const c = new OpenBatch();
  c.add('x'.repeat(999), 't', 0);
  t.ok(c.full(1000), 'raw cap (with the newline)');
});

t.test('close: one part when it fits, the lines as NDJSON, and the batch is empty after', async (t) => {
  const b = new OpenBatch();
  const lines = Array.from({ length: 50 }, (_, i) => line(i));
  for (const l of lines) b.add(l, (JSON.parse(l) as { time: string }).time, 0);
  b.addDropped({ lines: 3, batches: 0, reason: 'r' }, 0);
  b.addDropped({ lines: 2, batches: 0, reason: 'r' }, 0);
  const parts = b.close();
  t.equal(parts.length, 1);
  const p = parts[0]!;
  t.equal(gunzipSync(p.gzip).toString(), lines.join('\n') + '\n');
  t.same([p.lines, p.rawBytes, p.firstAt, p.lastAt], [50, Buffer.byteLength(lines.join('\n') + '\n'), '2026-05-06T07:00:00.000Z', '2026-05-06T07:00:00.049Z']);
  t.same(p.droppedBefore, { lines: 5, batches: 0, reason: 'r' }, 'drops summed');
  t.ok(b.empty);
  t.equal(b.openedAt, undefined);
});

t.test('a batch that would not fit is split into parts that each fit, in order', async (t) => {
  // Random hex does not compress much: 2,000 lines of 300 hex digits are ~330 KB of gzip.
  const lines = Array.from({ length: 2000 }, (_, i) => line(i, randomBytes(150).toString('hex')));
  const parts = compressParts(lines, lines.map(() => 't'));
  t.ok(parts.length >= 4, `${parts.length} parts`);
  t.ok(parts.every((p) => p.gzip.length <= PART_MAX_GZIP), 'each under the limit');
  t.equal(parts.map((p) => gunzipSync(p.gzip).toString()).join(''), lines.join('\n') + '\n', 'together, every line once in order');
  t.equal(parts.reduce((n, p) => n + p.lines, 0), 2000);
});

t.test('the batch with only a drop count closes as an empty part that carries it', async (t) => {
  const b = new OpenBatch();
  b.addDropped({ lines: 9, batches: 0, reason: 'r' }, 5);
  t.notOk(b.empty);
  const [p] = b.close();
  t.same([p?.lines, gunzipSync(p!.gzip).toString(), p?.droppedBefore?.lines], [0, '', 9]);
});

t.test('the ratio estimate aims batches near one part', async (t) => {
  const r = new RatioEstimate();
  for (let i = 0; i < 20; i++) r.observe(1_000_000, 50_000); // 20x
  t.ok(r.rawCap() > PART_MAX_GZIP * 10 && r.rawCap() <= 2 * 1024 * 1024, `${r.rawCap()} raw bytes a batch at 20x`);
  for (let i = 0; i < 20; i++) r.observe(100_000, 90_000); // barely compressible
  t.ok(r.rawCap() >= 64 * 1024 && r.rawCap() < PART_MAX_GZIP * 1.2, `${r.rawCap()} raw bytes: about the limit itself`);
});
