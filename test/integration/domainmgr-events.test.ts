// domainmgr loses the Docker engine for a while (a socket proxy in front of the
// real engine is cut, as when dockerd restarts) and an app dies meanwhile: once
// the engine is back, domainmgr reconnects, re-inspects and restarts the app.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import Docker from 'dockerode';
import t from 'tap';
import { domainmgr } from '../../agents/domainmgr/main';
import { LABEL_INSTANCE } from '../../lib/docker';
import { DomainConfigCollection, DomainStatusCollection } from '../../pubsub/collections/apps';
import { AppInstanceConfigCollection } from '../../pubsub/collections/config';
import { startAgents } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';

const services = ensureServices();
const docker = new Docker({ socketPath: services.dockerSocket });

/** A unix socket that forwards to the engine, and can be cut (every connection dropped, none accepted) and restored. */
class EngineProxy {
  readonly path = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-dm-proxy-')), 'docker.sock');
  private server: net.Server | undefined;
  private readonly open = new Set<net.Socket>();

  async up(): Promise<void> {
    fs.rmSync(this.path, { force: true });
    this.server = net.createServer((client) => {
      const engine = net.connect(services.dockerSocket);
      for (const s of [client, engine]) {
        this.open.add(s);
        s.on('close', () => this.open.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(engine).pipe(client);
      client.on('close', () => engine.destroy());
      engine.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => this.server!.listen(this.path, () => r()));
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    for (const s of this.open) s.destroy();
    await closed;
  }
}

t.test('an exit while the engine was unreachable is noticed after the reconnect', async (t) => {
  const proxy = new EngineProxy();
  await proxy.up();
  const h = await startAgents([domainmgr], { settings: { dockerSocket: proxy.path } });
  t.teardown(async () => {
    await h.stop();
    await proxy.cut();
    const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${h.settings.instance}`] } });
    for (const c of list) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  });
  await h.publisher(AppInstanceConfigCollection); // the device config (empty): the app exists as a DomainConfig only
  const zm = await h.publisher(DomainConfigCollection);
  zm.signalRestarted();
  const appId = randomUUID();
  zm.publish(appId, {
    appId, name: `ev${appId.slice(0, 6)}`, activate: true, imageRef: services.baseImage, command: ['sleep', '3600'], env: {},
    ports: [], memoryMiB: 32, cpus: 0.25, mounts: [], networkInstanceIds: [], specHash: 'spec-1',
  });
  const running = await h.waitFor(DomainStatusCollection, appId, (v) => v?.state === 'RUNNING', 'RUNNING');

  await proxy.cut();
  await docker.getContainer(running!.containerId!).kill();
  const info = await docker.getContainer(running!.containerId!).inspect();
  t.equal(info.State.Running, false, 'the app died while domainmgr could not see the engine');
  await proxy.up();

  const back = await h.waitFor(DomainStatusCollection, appId, (v) => v?.state === 'RUNNING' && v.restarts === 1, 'restarted after the reconnect');
  t.equal(back?.containerId, running?.containerId);
  t.equal(back?.lastExitCode, 137);
  t.equal((await docker.getContainer(running!.containerId!).inspect()).State.Running, true, 'the engine runs it again');
});
