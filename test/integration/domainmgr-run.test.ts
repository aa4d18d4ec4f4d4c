// domainmgr against the real Docker engine: run an app and reach it, limits,
// activate false/true, a new specHash, crash loop to BROKEN, docker kill,
// metrics, delete. The test publishes DomainConfig as zedmanager would.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Docker from 'dockerode';
import t from 'tap';
import { domainmgr } from '../../agents/domainmgr/main';
import { LABEL_INSTANCE } from '../../lib/docker';
import { DomainConfigCollection, DomainMetricCollection, DomainStatusCollection, type DomainConfig } from '../../pubsub/collections/apps';
import { AppInstanceConfigCollection, ConfigItemValueMapCollection } from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { startAgents, type Harness } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';
import { freePort } from '../lib/config-builder';

const services = ensureServices();
const docker = new Docker({ socketPath: services.dockerSocket });
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo hello-zedbox > /www/index.html && exec httpd -f -p 8080 -h /www'];


function appConfig(over: Partial<DomainConfig> = {}): DomainConfig {
  return {
    appId: randomUUID(), name: `t${randomUUID().slice(0, 6)}`, activate: true, imageRef: services.baseImage, command: HTTPD, env: { GREETING: 'hi' },
    ports: [], memoryMiB: 48, cpus: 0.5, mounts: [], networkInstanceIds: [], specHash: 'spec-1', ...over,
  };
}

async function start(t: { teardown(fn: () => Promise<void>): void }, items: Record<string, string> = {}): Promise<{ h: Harness; pub: Awaited<ReturnType<Harness['publisher']>> }> {
  const h = await startAgents([domainmgr], { settings: { dockerSocket: services.dockerSocket } });
  await h.publisher(AppInstanceConfigCollection); // the device config (empty): these apps exist as DomainConfigs only
  const itemPub = await h.publisher(ConfigItemValueMapCollection);
  itemPub.publish('global', { items: { ...defaultConfigItems(), 'app.stop.timeout': '2', ...items } });
  const pub = await h.publisher(DomainConfigCollection);
  pub.signalRestarted();
  t.teardown(async () => {
    await h.stop();
    await removeInstance(h.settings.instance);
  });
  return { h, pub };
}

async function removeInstance(instance: string): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instance}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
}

/** true when the engine answers 404 for the container. */
async function gone(id: string): Promise<boolean> {
  return docker.getContainer(id).inspect().then(() => false, (err: { statusCode?: number }) => err.statusCode === 404);
}

const state = (s: string) => (v: { state: string } | undefined) => v?.state === s;

t.test('an app runs, is reachable on its port, with its limits, and stops, restarts, recreates and goes', async (t) => {
  const { h, pub } = await start(t, { 'timer.metric.interval': '1' });
  const port = await freePort();
  const site = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-dm-site-'));
  fs.writeFileSync(path.join(site, 'index.html'), 'hello from a mounted volume\n');
  t.teardown(() => fs.rmSync(site, { recursive: true, force: true }));
  const cfg = appConfig({
    ports: [{ container: 8080, host: port, hostIp: '127.0.0.1' }],
    mounts: [{ hostPath: site, containerPath: '/site', readonly: true }],
    command: ['httpd', '-f', '-p', '8080', '-h', '/site'],
  });
  pub.publish(cfg.appId, cfg);
  const running = await h.waitFor(DomainStatusCollection, cfg.appId, state('RUNNING'), 'RUNNING');
  t.equal(running?.activated, true);
  t.equal(running?.containerName, `zedbox-${h.settings.instance}-${cfg.name}-${cfg.appId.slice(0, 8)}`);
  const body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
  t.equal(body.trim(), 'hello from a mounted volume', 'the app answers on its host port, from its mount');

  const info = await docker.getContainer(running!.containerId!).inspect();
  t.equal(info.HostConfig.Memory, 48 * 1024 * 1024, 'memory limit');
  t.equal(info.HostConfig.NanoCpus, 0.5e9, 'cpu limit');
  t.equal(info.HostConfig.Init, true);
  t.equal(info.HostConfig.RestartPolicy?.Name, 'no');
  t.ok(info.Config.Env.includes('GREETING=hi'), 'env');
  t.match(info.Mounts, [{ Source: site, Destination: '/site', RW: false }], 'the mount, read-only');
  t.same(
    { owned: info.Config.Labels['org.zedbox.owned'], inst: info.Config.Labels[LABEL_INSTANCE], app: info.Config.Labels['org.zedbox.app'], spec: info.Config.Labels['org.zedbox.spec'] },
    { owned: '1', inst: h.settings.instance, app: cfg.appId, spec: 'spec-1' }, 'labels');

  const metric = await h.waitFor(DomainMetricCollection, cfg.appId, (m) => !!m, 'a DomainMetric');
  t.ok(metric!.memoryBytes > 0 && metric!.memoryBytes < 48 * 1024 * 1024, `memory ${metric!.memoryBytes} bytes is plausible`);
  t.equal(metric!.memoryLimitBytes, 48 * 1024 * 1024, 'limit as configured');
  t.ok(metric!.cpuTotalNanos > 0 && metric!.cpuPercent >= 0 && metric!.cpuPercent <= 100, `cpu ${metric!.cpuPercent} %`);

  pub.publish(cfg.appId, { ...cfg, activate: false });
  const halted = await h.waitFor(DomainStatusCollection, cfg.appId, state('HALTED'), 'HALTED');
  t.equal(halted?.containerId, running?.containerId, 'the stopped container is kept');
  t.equal((await docker.getContainer(running!.containerId!).inspect()).State.Running, false);
  t.equal(halted?.restarts, 0, 'our own stop is no crash');

  pub.publish(cfg.appId, cfg);
  const again = await h.waitFor(DomainStatusCollection, cfg.appId, state('RUNNING'), 'RUNNING again');
  t.equal(again?.containerId, running?.containerId, 'the same container runs again');
  t.equal(again?.restarts, 0);

  pub.publish(cfg.appId, { ...cfg, specHash: 'spec-2' });
  const recreated = await h.waitFor(DomainStatusCollection, cfg.appId, (v) => v?.state === 'RUNNING' && v.specHash === 'spec-2', 'recreated');
  t.not(recreated?.containerId, running?.containerId, 'a new specHash makes a new container');
  t.ok(await gone(running!.containerId!), 'the old one is removed');

  pub.unpublish(cfg.appId);
  await h.waitFor(DomainStatusCollection, cfg.appId, (v) => v === undefined, 'status unpublished');
  t.ok(await gone(recreated!.containerId!), 'deleting the config removes the container');
  await h.waitFor(DomainMetricCollection, cfg.appId, (v) => v === undefined, 'metric unpublished');
});

t.test('a container that keeps exiting is restarted with backoff, then left BROKEN with its exit code and output', async (t) => {
  const { h, pub } = await start(t, { 'app.crashloop.limit': '3', 'app.crashloop.window': '600' });
  const cfg = appConfig({ command: ['sh', '-c', 'echo starting; echo dying; exit 3'] });
  pub.publish(cfg.appId, cfg);
  const restarting = await h.waitFor(DomainStatusCollection, cfg.appId, (v) => v?.nextRestartAt !== undefined, 'a pending restart');
  t.equal(restarting?.state, 'BOOTING', 'BOOTING while the restart waits');
  t.equal(restarting?.lastExitCode, 3);
  const broken = await h.waitFor(DomainStatusCollection, cfg.appId, state('BROKEN'), 'BROKEN');
  t.equal(broken?.lastExitCode, 3, 'exit code');
  t.same(broken?.lastLogLines, ['starting', 'dying'], 'last output lines');
  t.equal(broken?.restarts, 2, 'restarted twice before the third exit left it broken');
  t.match(broken?.error?.error, /exited 3 times.*last exit code 3.*dying/);
  t.equal(broken?.activated, false);
  const info = await docker.getContainer(broken!.containerId!).inspect();
  t.equal(info.State.Running, false, 'not restarted any more');
});

t.test('docker kill of a running app is seen on the event stream and the app restarted', async (t) => {
  const { h, pub } = await start(t);
  const cfg = appConfig();
  pub.publish(cfg.appId, cfg);
  const running = await h.waitFor(DomainStatusCollection, cfg.appId, state('RUNNING'), 'RUNNING');
  await docker.getContainer(running!.containerId!).kill();
  const back = await h.waitFor(DomainStatusCollection, cfg.appId, (v) => v?.state === 'RUNNING' && v.restarts === 1, 'restarted once');
  t.equal(back?.containerId, running?.containerId, 'the same container is started again');
  t.not(back?.startedAt, running?.startedAt, 'it was started anew');
  t.equal(back?.lastExitCode, 137, 'killed by SIGKILL');
});
