// The controller's log store: batches read back in seq order, each written once,
// the oldest deleted past the per-device cap, leftovers of a crash cleaned.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { LogStore, decodeBatch, type StoredLogBatch } from '../../controller/log-store';
import { StateDir } from '../../controller/state-dir';

const DEV = 'aaaaaaaa-1111-4222-8333-444444444444';
const TIME = '2026-05-06T07:08:09.000Z';

function batch(seq: number, padding = 0): StoredLogBatch {
  const text = JSON.stringify({ time: TIME, source: 'zedagent', level: 'info', msg: `batch ${seq}${'x'.repeat(padding)}` }) + '\n';
  // level 0: the padding stays in the file, so sizes are predictable.
  return { seq, firstAt: TIME, lastAt: TIME, lines: 1, rawBytes: text.length, gzip: gzipSync(text, { level: 0 }).toString('base64'), receivedAt: TIME };
}

function dirOf(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedctl-logstore-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('batches come back in seq order, whatever order they were stored in', async (t) => {
  const store = new LogStore(dirOf(t));
  t.same(store.seqs(DEV), [], 'no folder yet: no batches');
  for (const seq of [12, 3, 1000000, 7]) t.equal(store.store(DEV, batch(seq)), 'stored');
  t.same(store.seqs(DEV), [3, 7, 12, 1000000], 'numeric order (the names are zero-padded to 12 digits)');
  t.same(store.read(DEV, 7), batch(7));
  t.equal(store.read(DEV, 8), undefined, 'a seq not stored reads as undefined');
  t.equal(store.store(DEV, batch(7)), 'duplicate');
  t.throws(() => store.dirOf('../../etc'), /invalid device id/, 'a device id cannot leave the logs folder');
});

t.test('past the cap the oldest batches are deleted, the newest always kept', async (t) => {
  const dir = dirOf(t);
  const probe = new LogStore(dir);
  probe.store(DEV, batch(1, 2000));
  const size = fs.statSync(probe.fileOf(DEV, 1)).size;
  fs.rmSync(path.join(dir, 'logs'), { recursive: true });

  const store = new LogStore(dir, size * 3 + 10);
  for (let seq = 1; seq <= 6; seq++) store.store(DEV, batch(seq, 2000));
  t.same(store.seqs(DEV), [4, 5, 6], 'three batches fit; the three oldest went');
  t.equal(store.deleted, 3);
  t.ok(store.bytesOf(DEV) <= size * 3 + 10, `within the cap (${store.bytesOf(DEV)} bytes)`);
  const other = 'bbbbbbbb-1111-4222-8333-444444444444';
  store.store(other, batch(1, 2000));
  t.same(store.seqs(other), [1], 'the cap is per device');
  t.same(store.seqs(DEV), [4, 5, 6]);

  const tiny = new LogStore(dirOf(t), 100);
  tiny.store(DEV, batch(1, 2000));
  tiny.store(DEV, batch(2, 2000));
  t.same(tiny.seqs(DEV), [2], 'a cap below one batch keeps the latest');
});

t.test('a store made later counts what is on disk already', async (t) => {
  const dir = dirOf(t);
  const first = new LogStore(dir);
  for (let seq = 1; seq <= 4; seq++) first.store(DEV, batch(seq, 2000));
  const size = fs.statSync(first.fileOf(DEV, 1)).size;
  const next = new LogStore(dir, size * 2 + 10); // a restarted controller with a smaller cap
  next.store(DEV, batch(5, 2000));
  t.same(next.seqs(DEV), [4, 5]);
});

t.test('temporary files left by a crash are removed; a fresh one (another replica writing) is not', async (t) => {
  const dir = dirOf(t);
  const store = new LogStore(dir);
  const logs = path.join(dir, 'logs', DEV);
  fs.mkdirSync(logs, { recursive: true });
  const stale = path.join(logs, '.000000000001.json.999.abcd.tmp');
  const fresh = path.join(logs, '.000000000002.json.998.abcd.tmp');
  fs.writeFileSync(stale, 'torn');
  fs.writeFileSync(fresh, 'being written');
  const old = new Date(Date.now() - 3600_000);
  fs.utimesSync(stale, old, old);
  store.store(DEV, batch(3));
  t.notOk(fs.existsSync(stale), 'the stale one is gone');
  t.ok(fs.existsSync(fresh), 'the fresh one stays');
  t.same(store.seqs(DEV), [3], 'neither counts as a batch');
});

t.test('decodeBatch reads lines and refuses what is not a batch', async (t) => {
  const l = { time: TIME, source: 'app', level: 'warn', msg: 'hi', app: 'web', stream: 'stderr' } as const;
  t.same(decodeBatch(gzipSync(`${JSON.stringify(l)}\n\n${JSON.stringify(l)}`).toString('base64')), { ok: true, lines: [l, l] }, 'blank lines skipped, last newline optional');
  t.match(decodeBatch(gzipSync('').toString('base64')), { ok: true, lines: [] }, 'an empty batch is a batch');
  t.match(decodeBatch(gzipSync(Buffer.alloc(2048, 'a')).toString('base64'), 1024), { ok: false, reason: 'too-large', error: /more than 1024 bytes/ });
  t.match(decodeBatch(gzipSync(JSON.stringify({ ...l, extra: 1 })).toString('base64')), { ok: false, reason: 'bad-line', error: /line 1/ }, 'unknown properties are refused');
  t.match(decodeBatch('abc'), { ok: false, reason: 'bad-gzip', error: /not base64/ });
});

t.test('zedctl device remove takes the device\'s logs with it', async (t) => {
  const dir = dirOf(t);
  const store = new LogStore(dir);
  store.store(DEV, batch(1));
  const state = new StateDir(dir);
  state.removeDevice({ serial: 'dev-1', state: 'onboarded', deviceId: DEV, createdAt: TIME });
  t.same(store.seqs(DEV), [], 'no batch left');
  t.notOk(fs.existsSync(path.join(dir, 'logs', DEV)), 'nor its folder');
});
