// domainmgr against the real Docker engine: adoption after a restart without
// restarting, removal of owned containers no config names (only after
// DomainConfig is complete and zedmanager signalled restarted), other
// instances' and unlabelled containers left alone, networks, and errors.
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import Docker from 'dockerode';
import t from 'tap';
import { domainmgr } from '../../agents/domainmgr/main';
import { LABEL_APP, LABEL_INSTANCE, LABEL_OWNED } from '../../lib/docker';
import type { Dirs } from '../../lib/dirs';
import { DomainConfigCollection, DomainStatusCollection, type DomainConfig } from '../../pubsub/collections/apps';
import { AppInstanceConfigCollection, ConfigItemValueMapCollection, NetworkInstanceConfigCollection } from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { startAgents, type Harness } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';

const services = ensureServices();
const docker = new Docker({ socketPath: services.dockerSocket });
const SLEEPER = ['sleep', '3600'];
const created: string[] = [];

t.teardown(async () => {
  for (const id of created) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
});

function appConfig(over: Partial<DomainConfig> = {}): DomainConfig {
  return {
    appId: randomUUID(), name: `t${randomUUID().slice(0, 6)}`, activate: true, imageRef: services.baseImage, command: SLEEPER, env: {},
    ports: [], memoryMiB: 32, cpus: 0.25, mounts: [], networkInstanceIds: [], specHash: 'spec-1', ...over,
  };
}

type ZedagentSide = { nis: ReturnType<Awaited<ReturnType<Harness['bus']['endpoint']>>['publication']> };

/** domainmgr on a bus, with zedagent's side (one endpoint for both of its collections). */
async function start(dirs?: Dirs): Promise<Harness & ZedagentSide> {
  const h = await startAgents([domainmgr], { dirs, settings: { dockerSocket: services.dockerSocket } });
  const zedagent = await h.bus.endpoint('zedagent');
  zedagent.publication(ConfigItemValueMapCollection).publish('global', {
    items: { ...defaultConfigItems(), 'app.stop.timeout': '1', 'app.restart.backoff.max': '2' },
  });
  // The device config names none of these apps (their DomainConfigs are the test's): an empty AppInstanceConfig.
  zedagent.publication(AppInstanceConfigCollection);
  return Object.assign(h, { nis: zedagent.publication(NetworkInstanceConfigCollection) });
}

async function cleanup(instance: string): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instance}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  const nets = await docker.listNetworks({ filters: { label: [`${LABEL_INSTANCE}=${instance}`] } });
  for (const n of nets) await docker.getNetwork(n.Id).remove().catch(() => undefined);
}

/** A running container made behind domainmgr's back, removed at the end whatever happens. */
async function foreign(labels: Record<string, string>): Promise<string> {
  const c = await docker.createContainer({ Image: services.baseImage, Cmd: SLEEPER, Labels: labels, HostConfig: { Init: true } });
  created.push(c.id);
  await c.start();
  return c.id;
}

async function exists(id: string): Promise<boolean> {
  return docker.getContainer(id).inspect().then(() => true, (err: { statusCode?: number }) => (err.statusCode === 404 ? false : Promise.reject(err)));
}

const running = (v: { state: string } | undefined): boolean => v?.state === 'RUNNING';

t.test('after a restart the running container is adopted; strays are removed only once zedmanager has restarted', async (t) => {
  const h1 = await start();
  const instance = h1.settings.instance;
  t.teardown(() => cleanup(instance));
  const cfg = appConfig();
  const zm1 = await h1.publisher(DomainConfigCollection);
  zm1.publish(cfg.appId, cfg);
  zm1.signalRestarted();
  const before = await h1.waitFor(DomainStatusCollection, cfg.appId, running, 'RUNNING');
  const startedBefore = (await docker.getContainer(before!.containerId!).inspect()).State.StartedAt;
  await h1.stop();
  t.equal((await docker.getContainer(before!.containerId!).inspect()).State.Running, true, 'stopping domainmgr leaves the app running');

  const stray = await foreign({ [LABEL_OWNED]: '1', [LABEL_INSTANCE]: instance, [LABEL_APP]: randomUUID() });
  const otherInstance = await foreign({ [LABEL_OWNED]: '1', [LABEL_INSTANCE]: `other-${instance}`, [LABEL_APP]: randomUUID() });
  const unlabelled = await foreign({});

  const h2 = await start(h1.dirs);
  t.teardown(() => h2.stop());
  t.equal(h2.settings.instance, instance, 'same dirs, same instance');
  const zm2 = await h2.publisher(DomainConfigCollection);
  zm2.publish(cfg.appId, cfg);
  const after = await h2.waitFor(DomainStatusCollection, cfg.appId, running, 'RUNNING after restart');
  t.equal(after?.containerId, before?.containerId, 'the same container');
  const info = await docker.getContainer(after!.containerId!).inspect();
  t.equal(info.State.StartedAt, startedBefore, 'not restarted: StartedAt unchanged');
  t.equal(after?.restarts, 0);
  t.ok(await exists(stray), 'nothing removed before zedmanager signals restarted');
  await h2.waitFor(DomainStatusCollection, cfg.appId, () => h2.watch(DomainStatusCollection).restarted, 'DomainStatus restarted signal');

  zm2.signalRestarted();
  const deadline = Date.now() + 30_000;
  while ((await exists(stray)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.notOk(await exists(stray), 'the owned container no config names is removed');
  t.ok(await exists(otherInstance), "another instance's container is left alone");
  t.ok(await exists(unlabelled), 'an unlabelled container is left alone');
  t.ok(await exists(after!.containerId!), 'the configured app stays');
});

t.test('an app on a network instance gets its own labelled bridge, removed when no config names it', async (t) => {
  const h = await start();
  t.teardown(async () => { await h.stop(); await cleanup(h.settings.instance); });
  const ni = { id: randomUUID(), name: `lan${randomUUID().slice(0, 6)}`, type: 'local' as const, subnet: `10.213.${Math.floor(Math.random() * 250)}.0/24` };
  h.nis.publish(ni.id, ni);
  const zm = await h.publisher(DomainConfigCollection);
  zm.signalRestarted();
  const cfg = appConfig({ networkInstanceIds: [ni.id] });
  zm.publish(cfg.appId, cfg);
  const st = await h.waitFor(DomainStatusCollection, cfg.appId, running, 'RUNNING');
  const netName = `zedbox-${h.settings.instance}-${ni.name}`;
  const info = await docker.getContainer(st!.containerId!).inspect();
  t.same(Object.keys(info.NetworkSettings.Networks), [netName], 'attached to the instance bridge only');
  const n = await docker.getNetwork(netName).inspect();
  t.equal(n.Labels?.[LABEL_INSTANCE], h.settings.instance, 'labelled');
  t.equal(n.IPAM?.Config?.[0]?.Subnet, ni.subnet, 'with the subnet given');
  zm.unpublish(cfg.appId);
  await h.waitFor(DomainStatusCollection, cfg.appId, (v) => v === undefined, 'status unpublished');
  const deadline = Date.now() + 30_000;
  const netExists = (): Promise<boolean> => docker.getNetwork(netName).inspect().then(() => true, () => false);
  while ((await netExists()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.notOk(await netExists(), 'the network is removed with the last app on it');
});

t.test('a bad image and a busy port are errors with a retry, and the app recovers when fixed', async (t) => {
  const h = await start();
  t.teardown(async () => { await h.stop(); await cleanup(h.settings.instance); });
  const zm = await h.publisher(DomainConfigCollection);
  zm.signalRestarted();
  const bad = appConfig({ imageRef: `zedbox-test/no-such-image-${randomUUID().slice(0, 8)}:1` });
  zm.publish(bad.appId, bad);
  const failed = await h.waitFor(DomainStatusCollection, bad.appId, (v) => v?.error !== undefined, 'an error');
  t.match(failed?.error?.error, new RegExp(`create container for app ${bad.name}.*no-such-image`), 'names the app and the image');
  t.match(failed?.error?.retryCondition, /will retry create in \d+ s/);
  t.equal(failed?.state, 'BOOTING');
  zm.publish(bad.appId, { ...bad, imageRef: services.baseImage, specHash: 'spec-2' });
  const fixed = await h.waitFor(DomainStatusCollection, bad.appId, running, 'RUNNING once the image is right');
  t.equal(fixed?.error, undefined, 'error cleared');

  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as net.AddressInfo).port;
  const busy = appConfig({ ports: [{ container: 8080, host: port, hostIp: '127.0.0.1' }] });
  zm.publish(busy.appId, busy);
  const portErr = await h.waitFor(DomainStatusCollection, busy.appId, (v) => v?.error !== undefined, 'a port error');
  t.match(portErr?.error?.error, new RegExp(`start container zedbox-${h.settings.instance}-${busy.name}-.* of app ${busy.name}.*address already in use`), 'start fails, naming the container and the cause');
  t.equal(h.watch(DomainStatusCollection).get(bad.appId)?.state, 'RUNNING', 'one failing app does not disturb another');
  await new Promise<void>((r) => blocker.close(() => r()));
  const ok = await h.waitFor(DomainStatusCollection, busy.appId, running, 'RUNNING once the port is free');
  t.equal(ok?.error, undefined);
});
