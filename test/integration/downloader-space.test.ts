// Free space and queueing: a reserve larger than the free space, a download
// larger than a small tmpfs (known size: refused before writing; unknown size:
// ENOSPC mid-download keeps the partial), and download.max.concurrent.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { contentStore } from '../../lib/content-store';
import { DownloaderStatusCollection } from '../../pubsub/collections';
import { HttpDatastore } from '../fixtures/http-datastore';
import { freshDirs, type Harness } from '../lib/agent-harness';
import { settledError, setup } from '../lib/downloader-setup';

async function serve(t: Test, files: Record<string, Buffer>) {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  for (const [k, v] of Object.entries(files)) server.files.set(k, v);
  return server;
}

/** Dirs whose persist directory is a fresh 2 MiB tmpfs. */
function tmpfsDirs(t: Test): Harness['dirs'] {
  const dirs = freshDirs();
  fs.mkdirSync(dirs.persist, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dirs.persist]);
  t.teardown(() => execFileSync('umount', ['-l', dirs.persist]));
  return dirs;
}

t.test('a reserve larger than the free space: a clear error, retried, no file', async (t) => {
  const body = randomBytes(1000);
  const server = await serve(t, { 'a.bin': body });
  const { h, want } = await setup(t, server, { items: { 'storage.reserve.mib': String(1 << 20) } });
  const digest = want('a.bin', body);
  const st = await h.waitFor(DownloaderStatusCollection, digest, (v) => !!v?.error && v.retryCount >= 1, 'a space error, retried');
  t.match(st?.error?.error, /^not enough space: need 1000 B plus a reserve of 1024\.0 GiB, [\d.]+ \w+ free$/);
  t.equal(server.requestsFor('/a.bin').length, 0, 'nothing was requested');
  t.notOk(fs.existsSync(path.join(contentStore(h.dirs.persist).pending, digest.slice(7))), 'no complete file');
});

t.test('a full disk: known size refused before writing; unknown size keeps the partial on ENOSPC', async (t) => {
  const big = randomBytes(3 << 20);
  const other = randomBytes(3 << 20);
  const server = await serve(t, { 'big.bin': big, 'other.bin': other });
  server.faults.set('other.bin', { chunked: true });
  const dirs = tmpfsDirs(t);
  const { h, want } = await setup(t, server, { dirs, items: { 'storage.reserve.mib': '0' } });
  const pending = contentStore(dirs.persist).pending;

  const known = want('big.bin', big);
  const st = await h.waitFor(DownloaderStatusCollection, known, settledError, 'a space error');
  t.match(st?.error?.error, /^not enough space: need 3\.0 MiB plus a reserve of 0 B, [\d.]+ \w+ free$/);
  t.notOk(fs.existsSync(path.join(pending, known.slice(7))), 'no complete file');

  const unknown = want('other.bin', other, { sizeBytes: undefined });
  const st2 = await h.waitFor(DownloaderStatusCollection, unknown, settledError, 'an ENOSPC error');
  t.match(st2?.error?.error, /^no space left writing sha256:[0-9a-f]{64}: kept [\d.]+ \w+ to resume$/);
  t.notOk(fs.existsSync(path.join(pending, unknown.slice(7))), 'no complete file');
  t.ok(fs.statSync(path.join(pending, unknown.slice(7) + '.part')).size > 0, 'the partial is kept');
});

t.test('download.max.concurrent: the rest wait in INITIAL, in order', async (t) => {
  const a = randomBytes(100_000);
  const b = randomBytes(1000);
  const server = await serve(t, { 'a.bin': a, 'b.bin': b });
  server.faults.set('a.bin', { stallAfter: 1000 });
  const { h, want } = await setup(t, server, { items: { 'download.max.concurrent': '1' } });
  const da = want('a.bin', a);
  await h.waitFor(DownloaderStatusCollection, da, (v) => v?.state === 'DOWNLOADING' && v.currentBytes === 1000, 'a downloading');
  const db = want('b.bin', b);
  const queued = await h.waitFor(DownloaderStatusCollection, db, (v) => !!v, 'b published');
  t.equal(queued?.state, 'INITIAL', 'b waits');
  t.equal(queued?.error, undefined, 'waiting is not an error');
  t.equal(server.requestsFor('/b.bin').length, 0, 'b not requested while a holds the only slot');
  want('a.bin', a, { refCount: 0 }); // a goes: b gets the slot
  await h.waitFor(DownloaderStatusCollection, da, (v) => v === undefined, 'a deleted');
  await h.waitFor(DownloaderStatusCollection, db, (v) => v?.state === 'DOWNLOADED', 'b DOWNLOADED');
});
