// The e2e device fixture: dist/zedbox with its own dirs, instance and config file,
// read through a bus client in the test; kill -9 and restart on the same dirs;
// cleanup removes exactly the Docker objects of its instance.
import * as fs from 'node:fs';
import t from 'tap';
import { dockerClient, LABEL_INSTANCE } from '../../lib/docker';
import { AGENT_NAMES } from '../../pubsub/owners';
import { Device, removeDockerObjects, startDevice } from '../lib/device';
import { ensureServices } from '../lib/services';

t.test('a device with an empty config runs every agent; kill -9 and restart on the same dirs', async (t) => {
  const device = await startDevice({ config: { version: '1' } });
  t.teardown(() => device.cleanup());
  t.same(JSON.parse(fs.readFileSync(device.configFile, 'utf8')), { version: '1' }, 'the config file is written');

  const first = await device.waitForAgents('running');
  const pid1 = device.pid;
  t.equal(first.length, AGENT_NAMES.length, 'an AgentStatus from every agent');
  t.ok(first.every((s) => s.pid === pid1 && s.mode === 'all'), 'all in the device process');

  await device.kill9();
  t.notOk(device.running, 'killed');
  await device.restart();
  const pid2 = device.pid;
  t.not(pid2, pid1, 'a new process');
  const second = await device.waitForAgents('running');
  t.ok(second.every((s) => s.pid === pid2), 'the test bus client followed the restart to the new process');

  const logs = device.logs();
  t.equal(logs.filter((l) => l.startsWith(`--- device ${device.instance}: start`)).length, 2, 'logs() holds both starts');
  t.ok(device.rssKb() > 0, 'RSS is readable');

  const exit = await device.stop();
  // When it is not clean, the device's own warnings say which agent held the stop up.
  const why = exit.code === 0 ? '' : `: ${device.logs().filter((l) => /"level":"(warn|error)"/.test(l)).slice(-10).join(' | ')}`;
  t.equal(exit.code, 0, `SIGTERM stops it cleanly${why}`);
});

t.test('writeConfig replaces the file atomically, leaving no temporary files', async (t) => {
  const device = new Device();
  t.teardown(() => device.cleanup());
  device.writeConfig({ version: '1' });
  device.writeConfig({ version: '2', apps: [] });
  t.same(JSON.parse(fs.readFileSync(device.configFile, 'utf8')), { version: '2', apps: [] });
  t.same(fs.readdirSync(device.dirs.config), ['device-config.json']);
});

t.test('removeDockerObjects removes the instance\'s containers and images and nothing of another instance', async (t) => {
  const { baseImage, dockerSocket } = ensureServices();
  const docker = dockerClient({ dockerSocket });
  const mine = `e2e${Math.random().toString(16).slice(2, 10)}`;
  const other = `${mine}x`;
  // Tagged both ways a device may name its images: zedbox-<instance>-… and volumemgr's zedbox-<instance>/<name>:<tag>.
  const make = async (instance: string): Promise<{ container: string; tags: string[] }> => {
    const c = await docker.createContainer({ Image: baseImage, Cmd: ['sleep', '60'], Labels: { [LABEL_INSTANCE]: instance }, HostConfig: { Init: true } });
    const tags = [`zedbox-${instance}-app:1`, `zedbox-${instance}/ct:0123456789ab`];
    for (const tag of tags) {
      const [repo, version] = tag.split(':') as [string, string];
      await docker.getImage(baseImage).tag({ repo, tag: version });
    }
    return { container: c.id, tags };
  };
  const a = await make(mine);
  const b = await make(other);
  t.teardown(() => removeDockerObjects(other));

  const removed = await removeDockerObjects(mine);
  t.match(removed, { containers: 1, images: 2 });
  const exists = (p: Promise<unknown>): Promise<boolean> => p.then(() => true, () => false);
  t.notOk(await exists(docker.getContainer(a.container).inspect()), 'its container is gone');
  for (const tag of a.tags) t.notOk(await exists(docker.getImage(tag).inspect()), `its image tag ${tag} is gone`);
  t.ok(await exists(docker.getContainer(b.container).inspect()), 'the other instance\'s container stays');
  for (const tag of b.tags) t.ok(await exists(docker.getImage(tag).inspect()), `the other instance's tag ${tag} stays`);
  t.ok(await exists(docker.getImage(baseImage).inspect()), 'the base image stays');
});
