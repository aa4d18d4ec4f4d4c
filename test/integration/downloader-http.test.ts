// The downloader against a real loopback HTTP server: a plain download, a cut
// connection resumed with Range, an unreachable datastore that comes back, a
// retry bump, refCount 0, and a restart in the middle of a download.
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import t from 'tap';
import { contentStore } from '../../lib/content-store';
import { DownloaderStatusCollection } from '../../pubsub/collections';
import { HttpDatastore } from '../fixtures/http-datastore';
import { settledError, setup, sha } from '../lib/downloader-setup';

t.test('downloads a file over HTTP into the pending store', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(3 << 20);
  server.files.set('images/a.bin', body);
  const { h, want } = await setup(t, server);
  const digest = want('images/a.bin', body);
  const st = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  t.equal(st?.currentBytes, body.length);
  t.equal(st?.path, `${contentStore(h.dirs.persist).pending}/${digest.slice(7)}`);
  t.ok(fs.readFileSync(st!.path!).equals(body), 'the file holds the served bytes');
  t.notOk(fs.existsSync(st!.path! + '.part'), 'no partial left');
  t.equal(st?.error, undefined);
});

t.test('a connection cut halfway resumes with Range', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(4 << 20);
  server.files.set('b.bin', body);
  server.faults.set('b.bin', { cutAfter: 2 << 20 });
  const { h, want } = await setup(t, server);
  const digest = want('b.bin', body);
  const st = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  const reqs = server.requestsFor('/b.bin');
  t.equal(reqs.length, 2, 'two requests: the cut one and the resumed one');
  t.match(reqs[1]?.range, /^bytes=\d+-$/, 'the second asked for a Range');
  t.ok(Number(/\d+/.exec(reqs[1]!.range!)![0]) > 0, 'resumed from a non-zero offset');
  t.ok(fs.readFileSync(st!.path!).equals(body), 'the bytes match');
  t.ok(st!.retryCount >= 1, 'counted as a retry');
  t.equal(st?.error, undefined, 'error cleared on success');
});

t.test('a server that ignores Range makes the download start again', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(2 << 20);
  server.files.set('c.bin', body);
  server.faults.set('c.bin', { cutAfter: 1 << 20, ignoreRange: true });
  const { h, want } = await setup(t, server);
  const digest = want('c.bin', body);
  const st = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  t.ok(fs.readFileSync(st!.path!).equals(body), 'the bytes match (no partial appended twice)');
});

t.test('an unreachable datastore is retried and the download succeeds when it comes back', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  const port = server.port;
  await server.stop();
  const body = randomBytes(64 << 10);
  server.files.set('d.bin', body);
  const { h, want } = await setup(t, server);
  const digest = want('d.bin', body);
  // Between attempts: INITIAL with the error (a retry in progress is DOWNLOADING and keeps the error).
  const failed = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'INITIAL' && !!v.error && v.retryCount >= 1, 'an error after a retry');
  t.match(failed?.error?.error, /ECONNREFUSED/);
  t.match(failed?.error?.retryCondition, /^will retry in \d+ s; retried \d+ times$/);
  t.ok(failed?.firstError, 'firstError kept');
  await server.start(port);
  t.teardown(() => server.stop());
  const st = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  t.ok(st!.retryCount > 0, `retryCount ${st!.retryCount}`);
  t.equal(st?.error, undefined, 'error cleared');
  t.equal(st?.firstError, undefined, 'firstError cleared');
});

t.test('a second datastore is tried when the first fails', async (t) => {
  const bad = new HttpDatastore();
  await bad.start();
  t.teardown(() => bad.stop());
  const good = new HttpDatastore();
  await good.start();
  t.teardown(() => good.stop());
  const body = randomBytes(1000);
  good.files.set('e.bin', body);
  const { h, ds, configs, dsId } = await setup(t, bad);
  const goodId = randomUUID();
  ds.publish(goodId, { id: goodId, type: 'http', url: good.url });
  const digest = sha(body);
  configs.publish(digest, { digest, kind: 'http', datastoreIds: [dsId, goodId], name: 'e.bin', refCount: 1, retry: 0 });
  const st = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  t.equal(st?.datastoreId, goodId);
  t.equal(bad.requestsFor('/e.bin').length, 1, 'the first datastore was asked first');
});

t.test('a size mismatch is an error naming both sizes', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(1000);
  server.files.set('f.bin', body);
  const { h, want } = await setup(t, server);
  const digest = want('f.bin', body, { sizeBytes: 999 });
  const st = await h.waitFor(DownloaderStatusCollection, digest, settledError, 'an error');
  t.match(st?.error?.error, /expected 999 bytes, server has 1000/);
  t.notOk(fs.existsSync(`${contentStore(h.dirs.persist).pending}/${digest.slice(7)}`), 'no complete file');
});

t.test('refCount 0 deletes the file and unpublishes; a retry bump fetches again', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(1000);
  server.files.set('g.bin', body);
  const { h, want } = await setup(t, server);
  const digest = want('g.bin', body);
  const st = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  want('g.bin', body, { retry: 1 });
  await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED' && v.retry === 1, 'DOWNLOADED again for retry 1');
  t.equal(server.requestsFor('/g.bin').length, 2, 'fetched a second time');
  want('g.bin', body, { retry: 1, refCount: 0 });
  await h.waitFor(DownloaderStatusCollection, digest, (v) => v === undefined, 'unpublished');
  t.notOk(fs.existsSync(st!.path!), 'file deleted');
});

t.test('stopped mid-download, a restart on the same dirs resumes the partial', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(2 << 20);
  server.files.set('h.bin', body);
  server.faults.set('h.bin', { stallAfter: 1 << 20 });
  const first = await setup(t, server);
  const digest = first.want('h.bin', body);
  await first.h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADING' && v.currentBytes === 1 << 20, 'half downloaded');
  const dirs = first.h.dirs;
  await first.h.stop();
  const pending = contentStore(dirs.persist).pending;
  t.equal(fs.statSync(`${pending}/${digest.slice(7)}.part`).size, 1 << 20, 'the partial survived the stop');
  server.faults.delete('h.bin');
  const second = await setup(t, server, { dirs });
  second.want('h.bin', body);
  const st = await second.h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED after restart');
  const reqs = server.requestsFor('/h.bin');
  t.equal(reqs.at(-1)?.range, `bytes=${1 << 20}-`, 'resumed from the partial size');
  t.ok(fs.readFileSync(st!.path!).equals(body), 'bytes match');
});

t.test('a stall aborts and retries', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(256 << 10);
  server.files.set('s.bin', body);
  server.faults.set('s.bin', { stallAfter: 1000 });
  const { h, want } = await setup(t, server, { items: { 'timer.download.stalled': '5' } }); // the least it allows
  const digest = want('s.bin', body);
  const st = await h.waitFor(DownloaderStatusCollection, digest, settledError, 'a stall error');
  t.match(st?.error?.error, /stalled: no data from .* for 5 s/, JSON.stringify(st?.error));
  server.faults.delete('s.bin');
  const done = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  t.ok(fs.readFileSync(done!.path!).equals(body));
});

t.test('a datastore that asks for Basic auth gets the datastore credentials', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  server.basicAuth = 'zed:pw';
  const body = randomBytes(1000);
  server.files.set('p.bin', body);
  const { h, ds, dsId, want } = await setup(t, server);
  ds.publish(dsId, { id: dsId, type: 'http', url: server.url, username: 'zed', password: 'pw' });
  const digest = want('p.bin', body);
  await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  const reqs = server.requestsFor('/p.bin');
  t.equal(reqs[0]?.authorization, undefined, 'anonymous first');
  t.equal(reqs.at(-1)?.authorization, 'Basic ' + Buffer.from('zed:pw').toString('base64'), 'then the credentials');
});
