// domainmgr: runs app instances as containers on the Docker engine (EVE §3.6).
// Wiring only: subscriptions, publications, the event watch and the loop.
import { dockerClient } from '../../lib/docker';
import { DomainConfigCollection, DomainMetricCollection, DomainStatusCollection } from '../../pubsub/collections/apps';
import { AppInstanceConfigCollection, ConfigItemValueMapCollection, NetworkInstanceConfigCollection } from '../../pubsub/collections/config';
import { untilAborted, type AgentSpec } from '../agent';
import { DomainManager } from './domainmgr';
import { watchEvents } from './events-driver';

/** How long to wait for zedmanager's restarted signal before removing unnamed containers anyway. */
export const RESTART_SIGNAL_GRACE_MS = 30_000;

export const domainmgr: AgentSpec = {
  name: 'domainmgr',
  summary: 'runs app instances as containers on the Docker engine',
  help: `Runs each DomainConfig (from zedmanager) as a container through the Docker engine
(--docker-socket): image, command, env, ports, memory and CPU limits, mounts, a bridge network per
NetworkInstanceConfig. activate false stops the container and keeps it; a deleted config removes it.
A container that exits is restarted with backoff (1 s doubling to app.restart.backoff.max) until
app.crashloop.limit exits within app.crashloop.window leave it BROKEN, with its exit code and last
output in DomainStatus. Running containers are adopted after a restart of zedbox, not restarted.
Publishes DomainStatus and DomainMetric (every timer.metric.interval s).`,
  async run(ctx) {
    const docker = dockerClient(ctx.settings);
    const statusPub = ctx.publish(DomainStatusCollection);
    const metricPub = ctx.publish(DomainMetricCollection);
    let manager: DomainManager | undefined;
    const poke = (): void => manager?.trigger();
    const configs = ctx.subscribe(DomainConfigCollection, { create: poke, modify: poke, delete: poke, restarted: poke });
    const nis = ctx.subscribe(NetworkInstanceConfigCollection, { create: poke, modify: poke, delete: poke });
    const items = ctx.subscribe(ConfigItemValueMapCollection, { create: poke, modify: poke, delete: poke });
    const apps = ctx.subscribe(AppInstanceConfigCollection, { create: poke, delete: poke, synchronized: poke });
    let syncedAt: number | undefined;
    manager = new DomainManager(ctx, docker, {
      configs: () => configs.getAll(),
      networkInstances: () => nis.getAll(),
      items: () => items.get('global')?.items,
      // Nothing is removed until the configs are complete and zedmanager has said it re-published them;
      // and never the container of an app the device config still names.
      mayRemove: (now) => configs.synchronized && apps.synchronized &&
        (configs.restarted || (syncedAt !== undefined && now - syncedAt >= RESTART_SIGNAL_GRACE_MS)),
      configuredApps: () => new Set(apps.keys()),
    }, statusPub, metricPub);
    // Rejects only when the agent stops first.
    const synced = await configs.whenSynchronized(ctx.signal).then(() => true, () => false);
    if (!synced || ctx.signal.aborted) return;
    syncedAt = Date.now();
    const events = watchEvents({ docker, instance: ctx.settings.instance, log: ctx.log, signal: ctx.signal, onEvent: poke, onConnected: poke });
    manager.trigger();
    await untilAborted(ctx.signal);
    await Promise.all([events, manager.idle(3000)]);
  },
};
