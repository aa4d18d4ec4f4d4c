// The TCP proxy in front of the real registry, as the downloader's tests use it:
// a blob download cut every N bytes finishes only by resuming with Range requests;
// refuse makes the registry unreachable.
import { createHash } from 'node:crypto';
import t from 'tap';
import { startProxy } from '../fixtures/tcp-proxy';
import { makeImage, removeImage } from '../lib/images';
import { ensureServices } from '../lib/services';

/** Reads a response body until it ends or the connection is cut; returns what arrived. */
async function readUntilCut(res: Response): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
  } catch { /* cut: keep what arrived */ }
  return Buffer.concat(chunks);
}

t.test('a blob fetched through a proxy that cuts every connection completes only by resuming', async (t) => {
  const { registry } = ensureServices();
  const img = await makeImage({ repo: 'fixtures/proxy', randomBytes: 400_000 });
  t.teardown(() => removeImage(img));
  const layer = img.layers[0]!;
  const proxy = await startProxy(registry, { kind: 'cut', afterBytes: 100_000 });
  t.teardown(() => proxy.close());
  const url = `${proxy.url}/v2/${img.repo}/blobs/${layer.digest}`;

  const first = await readUntilCut(await fetch(url));
  t.ok(first.length > 0 && first.length < layer.size, `one connection brings part of the blob (${first.length} of ${layer.size})`);

  let have = first;
  let requests = 1;
  while (have.length < layer.size && requests < 50) {
    const res = await fetch(url, { headers: { range: `bytes=${have.length}-` } });
    t.equal(res.status, 206, `request ${++requests} resumes at ${have.length}`);
    have = Buffer.concat([have, await readUntilCut(res)]);
  }
  t.equal(have.length, layer.size, 'all of it arrived');
  t.equal(`sha256:${createHash('sha256').update(have).digest('hex')}`, layer.digest, 'and it is the blob');
  t.ok(proxy.stats().cuts >= 4, `the proxy cut ${proxy.stats().cuts} connections`);
});

t.test('refuse makes the registry unreachable until pass', async (t) => {
  const { registry } = ensureServices();
  const proxy = await startProxy(registry, { kind: 'refuse' });
  t.teardown(() => proxy.close());
  await t.rejects(fetch(`${proxy.url}/v2/`), 'the request fails');
  t.ok(proxy.stats().refused >= 1);
  proxy.setMode({ kind: 'pass' });
  const res = await fetch(`${proxy.url}/v2/`);
  t.equal(res.status, 200, 'the registry answers through the proxy again');
});
