// End to end: content that must not be used, and networks that fail. A tampered
// blob and a wrong digest are refused with errors naming them, and a corrected
// config recovers without a restart; an unreachable registry and a download cut
// halfway are retried and resumed until the app runs.
import * as fs from 'node:fs';
import t, { type Test } from 'tap';
import { AppInstanceStatusCollection as AppStatus, type AppInstanceStatus } from '../../pubsub/collections';
import { startProxy } from '../fixtures/tcp-proxy';
import { ConfigBuilder, freePorts, httpGet } from '../lib/config-builder';
import { startDevice, type Device } from '../lib/device';
import { makeImage, removeImage, type TestImage } from '../lib/images';
import { ensureServices } from '../lib/services';

const services = ensureServices();
const FAST_RETRY = { configItems: { 'timer.download.retry': '2' } };
const running = (s: Readonly<AppInstanceStatus> | undefined): boolean => s?.state === 'RUNNING';
const errorText = (s: Readonly<AppInstanceStatus> | undefined): string => JSON.stringify(s?.errors ?? []);

async function image(t: Test, opts: Parameters<typeof makeImage>[0]): Promise<TestImage> {
  const img = await makeImage(opts);
  t.teardown(() => removeImage(img));
  return img;
}

async function device(t: Test, cfg: ConfigBuilder, extra = FAST_RETRY): Promise<Device> {
  const d = await startDevice({ config: cfg.build(extra) });
  t.teardown(() => d.cleanup());
  return d;
}

t.test('a tampered blob is never used; a corrected config recovers without a restart', async (t) => {
  const bad = await image(t, { repo: 'e2e/tampered' });
  const layer = bad.layers[0];
  if (!layer) throw new Error('test image has no layer');
  const file = bad.registryBlobPath(layer.digest);
  const bytes = fs.readFileSync(file);
  bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
  fs.writeFileSync(file, bytes);
  const [port] = await freePorts(1) as [number];
  const cfg = new ConfigBuilder(`http://${services.registry}`).set('app', { image: bad.repoTag, port });
  const d = await device(t, cfg);
  const id = cfg.appId('app');
  const failed = await d.waitForApp(id, (s) => errorText(s).includes(layer.digest), 'an error naming the tampered layer');
  t.not(failed?.state, 'RUNNING', 'the app does not run');
  t.notOk(failed?.containerId, 'no container was made from it');
  t.match(failed?.error?.error ?? '', /sha256/, 'the error says the digest did not match');

  const good = await image(t, { repo: 'e2e/good' });
  d.writeConfig(cfg.update('app', { image: good.repoTag }).build(FAST_RETRY));
  const ok = await d.waitForApp(id, running, 'RUNNING from the corrected image');
  t.same(ok?.errors, [], 'the error is gone');
  t.equal((await httpGet(port)).body, 'app\n', 'the app serves');
});

t.test('a wrong digest in the config is refused with an error naming it', async (t) => {
  const img = await image(t, { repo: 'e2e/digest' });
  const wrong = `sha256:${'ab'.repeat(32)}`;
  const [port] = await freePorts(1) as [number];
  const cfg = new ConfigBuilder(`http://${services.registry}`).set('app', { image: img.repoTag, port, sha256: wrong });
  const d = await device(t, cfg);
  const id = cfg.appId('app');
  const failed = await d.waitForApp(id, (s) => errorText(s).includes(wrong), 'an error naming the wrong digest');
  t.not(failed?.state, 'RUNNING', 'the app does not run');
  d.writeConfig(cfg.update('app', { sha256: img.manifestDigest }).build(FAST_RETRY));
  await d.waitForApp(id, running, 'RUNNING with the right digest');
  t.equal((await httpGet(port)).body, 'app\n', 'the app serves');
  t.same(d.get(AppStatus, id)?.errors, [], 'no error left');
});

t.test('an unreachable registry is retried until it comes back', async (t) => {
  const img = await image(t, { repo: 'e2e/unreachable' });
  const proxy = await startProxy(services.registry, { kind: 'refuse' });
  t.teardown(() => proxy.close());
  const [port] = await freePorts(1) as [number];
  const cfg = new ConfigBuilder(`http://${services.registry}`).set('app', { image: img.repoTag, port, datastoreUrl: proxy.url });
  const d = await device(t, cfg);
  const id = cfg.appId('app');
  const failing = await d.waitForApp(id, (s) => (s?.errors.length ?? 0) > 0, 'an error while the registry is unreachable');
  t.match(failing?.error?.retryCondition ?? '', /retr/i, 'the error says it will be retried');
  await d.waitFor(AppStatus, id, (s) => /retried [1-9]/.test(JSON.stringify(s?.errors ?? [])) || proxy.stats().refused >= 2, 'a second attempt', 30_000);
  proxy.setMode({ kind: 'pass' });
  const ok = await d.waitForApp(id, running, 'RUNNING once the registry answers');
  t.same(ok?.errors, [], 'the error is cleared');
  t.ok(proxy.stats().refused >= 2, `connections were refused and retried (${proxy.stats().refused})`);
});

t.test('a download cut halfway resumes where it stopped', async (t) => {
  const size = 8 * 1024 * 1024;
  const img = await image(t, { repo: 'e2e/resume', randomBytes: size });
  const layerBytes = img.layers.reduce((n, l) => n + l.size, 0);
  // Every connection is cut after 3 MiB: only a download that resumes can finish.
  const proxy = await startProxy(services.registry, { kind: 'cut', afterBytes: 3 * 1024 * 1024 });
  t.teardown(() => proxy.close());
  const [port] = await freePorts(1) as [number];
  const cfg = new ConfigBuilder(`http://${services.registry}`).set('app', { image: img.repoTag, port, datastoreUrl: proxy.url });
  const d = await device(t, cfg);
  await d.waitForApp(cfg.appId('app'), running, 'RUNNING despite the cuts', 120_000);
  const stats = proxy.stats();
  t.ok(stats.cuts >= 2, `the download was cut ${stats.cuts} times`);
  t.ok(stats.bytesDown < layerBytes * 1.5, `it fetched ${stats.bytesDown} bytes for ${layerBytes} bytes of layers: resumed, not restarted`);
  t.equal((await httpGet(port)).body, 'app\n', 'the app serves');
});
