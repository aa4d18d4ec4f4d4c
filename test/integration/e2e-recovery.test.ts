// End to end: what a device does when it loses power mid-deploy, and when it is
// handed a broken config. After kill -9 and a restart it converges without
// restarting the apps that were running, and the interrupted download resumes;
// a malformed config is refused with every bad field named while the previous
// config keeps running.
import t from 'tap';
import { dockerClient } from '../../lib/docker';
import { AppInstanceStatusCollection as AppStatus, DeviceConfigStatusCollection as DeviceStatus } from '../../pubsub/collections';
import { startProxy } from '../fixtures/tcp-proxy';
import { ConfigBuilder, freePorts, httpGet } from '../lib/config-builder';
import { startDevice } from '../lib/device';
import { makeImage, removeImage } from '../lib/images';
import { ensureServices } from '../lib/services';

const services = ensureServices();
const docker = dockerClient({ dockerSocket: services.dockerSocket });
const FAST_RETRY = { configItems: { 'timer.download.retry': '2' } };

async function started(containerId: string | undefined): Promise<{ id: string; startedAt: string }> {
  if (!containerId) throw new Error('the app reports no container');
  const c = await docker.getContainer(containerId).inspect();
  return { id: c.Id, startedAt: c.State.StartedAt };
}

t.test('kill -9 mid-deploy: after a restart the device converges and running apps are not restarted', async (t) => {
  const small = await makeImage({ repo: 'e2e/running' });
  const big = await makeImage({ repo: 'e2e/big', randomBytes: 16 * 1024 * 1024 });
  t.teardown(() => Promise.all([removeImage(small), removeImage(big)]));
  const layerBytes = big.layers.reduce((n, l) => n + l.size, 0);
  // The big image comes through a proxy that cuts after 4 MiB: the download is under way when power goes.
  const proxy = await startProxy(services.registry, { kind: 'cut', afterBytes: 4 * 1024 * 1024 });
  t.teardown(() => proxy.close());
  const [runPort, bigPort] = await freePorts(2) as [number, number];
  const cfg = new ConfigBuilder(`http://${services.registry}`).set('steady', { image: small.repoTag, port: runPort, dataDirs: ['/data'] });
  const device = await startDevice({ config: cfg.build(FAST_RETRY) });
  t.teardown(() => device.cleanup());
  const steady = cfg.appId('steady');
  const before = await started((await device.waitForApp(steady, (s) => s?.state === 'RUNNING', 'steady RUNNING'))?.containerId);

  device.writeConfig(cfg.set('big', { image: big.repoTag, port: bigPort, datastoreUrl: proxy.url }).build(FAST_RETRY));
  const bigId = cfg.appId('big');
  await device.waitForApp(bigId, (s) => (s?.volumes[0]?.currentBytes ?? 0) > 0 || proxy.stats().cuts > 0, 'big downloading');
  proxy.setMode({ kind: 'blackhole' });
  await device.kill9();
  t.pass('zedbox killed with SIGKILL while the big image was downloading');

  proxy.setMode({ kind: 'pass' });
  await device.start();
  const big2 = await device.waitForApp(bigId, (s) => s?.state === 'RUNNING', 'big RUNNING after the restart', 120_000);
  t.equal((await httpGet(bigPort)).body, 'big\n', 'the app deployed across the crash serves');
  t.ok(proxy.stats().bytesDown < layerBytes * 1.5, `the download resumed after the restart (${proxy.stats().bytesDown} bytes fetched for ${layerBytes})`);
  t.same(big2?.errors, [], 'no error left');

  const s = await device.waitForApp(steady, (v) => v?.state === 'RUNNING', 'steady RUNNING after the restart');
  const after = await started(s?.containerId);
  t.equal(after.id, before.id, 'the running app kept its container');
  t.equal(after.startedAt, before.startedAt, 'and was not restarted');
  t.equal((await httpGet(runPort, '/boots.txt')).body, 'booted\n', 'it booted once in all');
});

t.test('a malformed config is refused with every bad field named; the previous one keeps running', async (t) => {
  const img = await makeImage({ repo: 'e2e/keep' });
  t.teardown(() => removeImage(img));
  const [port] = await freePorts(1) as [number];
  const cfg = new ConfigBuilder(`http://${services.registry}`).set('keeper', { image: img.repoTag, port });
  const device = await startDevice({ config: cfg.build() });
  t.teardown(() => device.cleanup());
  const id = cfg.appId('keeper');
  const before = await started((await device.waitForApp(id, (s) => s?.state === 'RUNNING', 'keeper RUNNING'))?.containerId);
  const applied = (await device.waitFor(DeviceStatus, 'global', (v) => v?.appliedVersion !== undefined, 'the first config applied'))?.appliedVersion;

  const broken = cfg.build() as unknown as { apps: Array<{ resources: Record<string, unknown>; ports: Array<Record<string, unknown>> }> };
  const app = broken.apps[0];
  if (!app) throw new Error('no app in the test config');
  app.resources.memoryMiB = 1;
  (app.ports[0] as Record<string, unknown>).host = 70000;
  device.writeConfig(broken);
  const refused = await device.waitFor(DeviceStatus, 'global', (s) => (s?.fieldErrors.length ?? 0) > 0, 'the config refused');
  const paths = (refused?.fieldErrors ?? []).map((e) => `${e.path}: ${e.message}`).join('\n');
  t.match(paths, /\/apps\/0\/resources\/memoryMiB/, 'the memory field is named');
  t.match(paths, /\/apps\/0\/ports\/0\/host/, 'the port field is named');
  t.ok(refused?.error, 'an error is reported');
  t.equal(refused?.appliedVersion, applied, 'the applied version has not changed');

  const dangling = cfg.build() as unknown as { apps: Array<{ volumeRefs: Array<Record<string, unknown>> }> };
  dangling.apps[0]?.volumeRefs.push({ volumeId: '00000000-0000-4000-8000-000000000000', mountDir: '/x' });
  device.writeConfig(dangling);
  const unknownRef = await device.waitFor(DeviceStatus, 'global', (s) => s?.rejectedSha256 !== refused?.rejectedSha256, 'the dangling reference refused');
  t.match(unknownRef?.fieldErrors ?? [], [{ path: '/apps/0/volumeRefs/1/volumeId', message: /00000000-0000-4000-8000-000000000000/ }], 'the dangling volume reference is named');

  device.writeConfig('{"version": "9", "apps": [ }');
  const syntax = await device.waitFor(DeviceStatus, 'global', (s) => /line|column|position|JSON/i.test(s?.error?.error ?? '') && s?.rejectedSha256 !== unknownRef?.rejectedSha256, 'a syntax error refused');
  t.ok(syntax?.error?.error, `a JSON syntax error is reported: ${syntax?.error?.error}`);

  const still = await started(device.get(AppStatus, id)?.containerId);
  t.equal(still.startedAt, before.startedAt, 'the app was not touched');
  t.equal((await httpGet(port)).body, 'keeper\n', 'and still serves');

  device.writeConfig(cfg.update('keeper', { page: 'fixed' }).build());
  await device.waitFor(DeviceStatus, 'global', (s) => s?.appliedVersion === cfg.lastVersion && s.fieldErrors.length === 0, 'the corrected config applied');
  await device.waitForApp(id, (s) => s?.state === 'RUNNING' && s.configVersion === cfg.lastVersion, 'keeper RUNNING the new config');
  t.equal((await httpGet(port)).body, 'fixed\n', 'a corrected config is applied');
});
