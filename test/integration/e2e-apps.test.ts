// End to end on the built bundle, a real Docker engine and a real registry: a
// device config names two apps; zedbox fetches, verifies and runs them. Then the
// operator's levers: activate, restart and purge counters, delete.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { dockerClient, LABEL_INSTANCE } from '../../lib/docker';
import { contentStore } from '../../lib/content-store';
import { AppInstanceStatusCollection as AppStatus, DeviceConfigStatusCollection as DeviceStatus, type AppInstanceStatus } from '../../pubsub/collections';
import { ConfigBuilder, freePorts, httpGet } from '../lib/config-builder';
import { startDevice } from '../lib/device';
import { makeImage, removeImage } from '../lib/images';
import { ensureServices } from '../lib/services';
import { waitUntil } from '../lib/wait';

const services = ensureServices();
const docker = dockerClient({ dockerSocket: services.dockerSocket });
const is = (state: AppInstanceStatus['state']) => (s: Readonly<AppInstanceStatus> | undefined): boolean => s?.state === state;

async function containerOf(id: string | undefined): Promise<{ id: string; startedAt: string; running: boolean }> {
  if (!id) throw new Error('the app reports no container');
  const c = await docker.getContainer(id).inspect();
  return { id: c.Id, startedAt: c.State.StartedAt, running: c.State.Running };
}

t.test('two apps from the registry, then activate, restart, purge and delete', async (t) => {
  const image = await makeImage({ repo: 'e2e/web' });
  t.teardown(() => removeImage(image));
  const [webPort, notesPort] = await freePorts(2) as [number, number];
  const cfg = new ConfigBuilder(`http://${services.registry}`)
    .set('web', { image: image.repoTag, port: webPort })
    .set('notes', { image: image.repoTag, port: notesPort, dataDirs: ['/data'], restartCounter: 5, purgeCounter: 2 });
  const device = await startDevice({ config: cfg.build() });
  t.teardown(() => device.cleanup());
  const web = cfg.appId('web');
  const notes = cfg.appId('notes');

  await t.test('both apps run and serve their ports', async (t) => {
    const w = await device.waitForApp(web, is('RUNNING'), 'web RUNNING');
    await device.waitForApp(notes, is('RUNNING'), 'notes RUNNING');
    t.equal((await httpGet(webPort)).body, 'web\n', 'web serves its page');
    t.equal((await httpGet(notesPort)).body, 'notes\n', 'notes serves its page');
    t.same(w?.errors, [], 'no errors');
    t.ok(w?.volumes.every((v) => v.state === 'CREATED_VOLUME'), 'its volumes are created');
    t.equal((await httpGet(notesPort, '/boots.txt')).body, 'booted\n', 'the first counters seen are a baseline: notes started once');
    const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${device.instance}`] } });
    t.equal(containers.length, 2, 'one container per app, labelled with the device instance');
  });

  await t.test('activate false stops an app and keeps it; true runs it again', async (t) => {
    const before = await containerOf(device.get(AppStatus, web)?.containerId);
    device.writeConfig(cfg.update('web', { activate: false }).build());
    const halted = await device.waitForApp(web, is('HALTED'), 'web HALTED');
    const stopped = await containerOf(halted?.containerId ?? before.id);
    t.equal(stopped.id, before.id, 'the container is kept');
    t.notOk(stopped.running, 'and not running');
    await t.rejects(fetch(`http://127.0.0.1:${webPort}/`, { signal: AbortSignal.timeout(2000) }), 'its port no longer answers');
    t.equal(device.get(AppStatus, notes)?.state, 'RUNNING', 'the other app runs on');
    device.writeConfig(cfg.update('web', { activate: true }).build());
    await device.waitForApp(web, is('RUNNING'), 'web RUNNING again');
    t.equal((await httpGet(webPort)).body, 'web\n', 'web serves again');
  });

  await t.test('a restart counter change restarts exactly once and keeps the volumes', async (t) => {
    const before = await containerOf(device.get(AppStatus, notes)?.containerId);
    device.writeConfig(cfg.update('notes', { restartCounter: 7 }).build());
    await device.waitForApp(notes, (s) => s?.restartCounter === 7 && s.state === 'RUNNING' && s.restartInprogress === 'none', 'notes restarted');
    t.equal((await httpGet(notesPort, '/boots.txt')).body, 'booted\nbooted\n', 'one more start (a counter that grew by 2 restarts once), same volume');
    const after = await containerOf(device.get(AppStatus, notes)?.containerId);
    t.not(after.startedAt, before.startedAt, 'the container was started again');
    device.writeConfig(cfg.build()); // a new version with the same counters
    await device.waitFor(DeviceStatus, 'global', (s) => s?.appliedVersion === cfg.lastVersion, 'the same counters applied');
    t.equal((await httpGet(notesPort, '/boots.txt')).body, 'booted\nbooted\n', 'an unchanged counter does nothing');
  });

  await t.test('a purge counter change recreates the volumes', async (t) => {
    device.writeConfig(cfg.update('notes', { purgeCounter: 3 }).build());
    await device.waitForApp(notes, (s) => s?.purgeCounter === 3 && s.state === 'RUNNING' && s.purgeInprogress === 'none', 'notes purged');
    t.equal((await httpGet(notesPort, '/boots.txt')).body, 'booted\n', 'a fresh data volume');
    const volumes = fs.readdirSync(contentStore(device.dirs.persist).volumes);
    const data = cfg.idsOf('notes').data[0] as string;
    await waitUntil(() => fs.readdirSync(contentStore(device.dirs.persist).volumes).filter((v) => v.startsWith(data)).length === 1, 'the old data volume removed');
    t.ok(volumes.some((v) => v.startsWith(data)), 'the data volume is a directory under the persist dir');
    t.equal((await httpGet(webPort)).body, 'web\n', 'the other app was not touched');
  });

  await t.test('deleting the apps removes containers, volumes, images and blobs', async (t) => {
    device.writeConfig(cfg.remove('web').remove('notes').build());
    await device.waitForApp(web, (s) => s === undefined, 'web gone');
    await device.waitForApp(notes, (s) => s === undefined, 'notes gone');
    const store = contentStore(device.dirs.persist);
    await waitUntil(async () => (await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${device.instance}`] } })).length === 0, 'containers removed');
    await waitUntil(() => list(store.volumes).length === 0, 'volume directories removed');
    await waitUntil(() => list(store.verified).length === 0 && list(store.pending).length === 0, 'blobs removed');
    await waitUntil(async () => (await docker.listImages()).every((i) => !(i.RepoTags ?? []).some((r) => r.startsWith(`zedbox-${device.instance}/`))), 'images removed');
    t.pass('nothing of the apps is left');
  });
});

function list(dir: string): string[] {
  try { return fs.readdirSync(dir).map((f) => path.join(dir, f)); } catch { return []; }
}
