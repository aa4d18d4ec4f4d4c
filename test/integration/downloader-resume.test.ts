// Resuming a partial that already holds every byte: the device was killed after
// the last write and before the rename. A Range from the end is unsatisfiable,
// and the Distribution registry answers it with a 416 that declares the blob's
// length, sends 33 bytes and closes (Node: "aborted"). The download must still
// complete, from the partial, and not loop on "aborted" or fetch it all again.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import t, { type Test } from 'tap';
import { downloader } from '../../agents/downloader/main';
import { PendingStore, type PartInfo } from '../../agents/downloader/store-driver';
import { contentStore } from '../../lib/content-store';
import {
  DatastoreConfigCollection, DownloaderConfigCollection, DownloaderStatusCollection, type Datastore, type DownloaderConfig,
} from '../../pubsub/collections';
import { HttpDatastore } from '../fixtures/http-datastore';
import { freshDirs, startAgents } from '../lib/agent-harness';
import { makeImage, removeImage } from '../lib/images';
import { ensureServices } from '../lib/services';

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** A pending store holding `bytes` as the partial of `digest`, with its sidecar, as a killed downloader leaves it. */
function leavePartial(digest: string, bytes: Buffer, info: Omit<PartInfo, 'digest'>) {
  const dirs = freshDirs();
  const store = new PendingStore(contentStore(dirs.persist).pending);
  fs.writeFileSync(store.partPath(digest), bytes);
  store.writeSidecar({ digest, ...info });
  return { dirs, store };
}

/** Starts the downloader on `dirs` with one datastore and asks for `config`; resolves with the final status. */
async function restartAndWant(t: Test, dirs: ReturnType<typeof freshDirs>, ds: Datastore, config: DownloaderConfig) {
  const h = await startAgents([downloader], { dirs });
  t.teardown(() => h.stop());
  (await h.publisher(DatastoreConfigCollection)).publish(ds.id, ds);
  (await h.publisher(DownloaderConfigCollection)).publish(config.digest, config);
  // Retries back off from 1 s: a few seconds cover a failed attempt and its retry.
  return h.waitFor(DownloaderStatusCollection, config.digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED', 15_000);
}

t.test('a complete partial of known size is committed without a request', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(3 << 20);
  server.files.set('full.bin', body);
  server.faults.set('full.bin', { registry416: true });
  const digest = sha(body);
  const dsId = randomUUID();
  const { dirs, store } = leavePartial(digest, body, { kind: 'http', name: 'full.bin', datastoreId: dsId, url: `${server.url}/full.bin`, totalBytes: body.length });
  const st = await restartAndWant(t, dirs, { id: dsId, type: 'http', url: server.url }, {
    digest, kind: 'http', datastoreIds: [dsId], name: 'full.bin', sizeBytes: body.length, refCount: 1, retry: 0,
  });
  t.ok(fs.readFileSync(st!.path!).equals(body), 'the partial became the file');
  t.equal(server.requestsFor('/full.bin').length, 0, 'nothing fetched again');
  t.notOk(fs.existsSync(store.partPath(digest)), 'no partial left');
  t.equal(st?.error, undefined);
});

t.test('a complete partial of unknown size: the 416 says it is whole, and it is committed', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(1 << 20);
  server.files.set('chunked.bin', body);
  server.faults.set('chunked.bin', { registry416: true });
  const digest = sha(body);
  const dsId = randomUUID();
  const { dirs } = leavePartial(digest, body, { kind: 'http', name: 'chunked.bin', datastoreId: dsId, url: `${server.url}/chunked.bin` });
  const st = await restartAndWant(t, dirs, { id: dsId, type: 'http', url: server.url }, {
    digest, kind: 'http', datastoreIds: [dsId], name: 'chunked.bin', refCount: 1, retry: 0,
  });
  t.same(server.requestsFor('/chunked.bin').map((r) => r.range), [`bytes=${body.length}-`], 'one request, from the end');
  t.ok(fs.readFileSync(st!.path!).equals(body), 'the partial became the file');
  t.equal(st?.retryCount, 0, 'no failed attempt');
});

t.test('a partial longer than the server\'s file: the 416 drops it and the download starts again', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(256 << 10);
  server.files.set('short.bin', body);
  server.faults.set('short.bin', { registry416: true });
  const digest = sha(body);
  const dsId = randomUUID();
  const { dirs } = leavePartial(digest, randomBytes(body.length + 1000), { kind: 'http', name: 'short.bin', datastoreId: dsId, url: `${server.url}/short.bin` });
  const st = await restartAndWant(t, dirs, { id: dsId, type: 'http', url: server.url }, {
    digest, kind: 'http', datastoreIds: [dsId], name: 'short.bin', refCount: 1, retry: 0,
  });
  t.same(server.requestsFor('/short.bin').map((r) => r.range), [`bytes=${body.length + 1000}-`, undefined], 'the Range, then from 0');
  t.ok(fs.readFileSync(st!.path!).equals(body), 'the server\'s bytes');
});

t.test('the real registry: a complete partial of a blob completes after a restart', async (t) => {
  const services = ensureServices();
  const img = await makeImage({ repo: 'dl/resume', randomBytes: 2 << 20 });
  t.teardown(() => removeImage(img));
  const layer = img.layers.reduce((a, b) => (b.size > a.size ? b : a));
  const url = `${img.registryUrl}/v2/${img.repo}/blobs/${layer.digest}`;
  const bytes = Buffer.from(await (await fetch(url)).arrayBuffer());
  t.equal(bytes.length, layer.size, 'the blob as the registry serves it');
  // What the registry says to a Range at the end: the mangled 416 this test is about.
  const probe = await fetch(url, { headers: { Range: `bytes=${layer.size}-` } });
  t.equal(probe.status, 416, `the registry answers a Range at the end with 416 (Content-Length ${probe.headers.get('content-length')})`);
  await probe.arrayBuffer().catch(() => undefined);
  const ds: Datastore = { id: randomUUID(), type: 'registry', url: `http://${services.registry}` };
  // No size in the config nor the sidecar: the downloader must ask, and get the 416.
  const { dirs } = leavePartial(layer.digest, bytes, { kind: 'oci-blob', name: img.repo, datastoreId: ds.id, url });
  const st = await restartAndWant(t, dirs, ds, { digest: layer.digest, kind: 'oci-blob', datastoreIds: [ds.id], name: img.repo, refCount: 1, retry: 0 });
  t.equal(sha(fs.readFileSync(st!.path!)), layer.digest, 'the blob is whole');
  t.equal(st?.error, undefined);
});
