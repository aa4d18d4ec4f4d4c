// What a DomainConfig becomes on the Docker engine: the container's name, its
// labels and its create options. Pure, so the mapping is unit-tested without an engine.
import type Docker from 'dockerode';
import { LABEL_APP, LABEL_INSTANCE, LABEL_OWNED, LABEL_SPEC } from '../../lib/docker';
import type { NetworkInstance } from '../../pubsub/collections/config';
import type { DomainConfig } from '../../pubsub/collections/apps';
import type { MaybeSealedString } from '../../lib/secrets';

/** Marks a Docker network as the bridge of one network instance (its id). */
export const LABEL_NETWORK = 'org.zedbox.network';

/**
 * Derived only from the config and the instance, so the container can be found again after a
 * restart, and two zedboxes sharing an engine (tests, a demo beside a device) never claim one name.
 */
export function containerName(instance: string, cfg: Pick<DomainConfig, 'name' | 'appId'>): string {
  return `zedbox-${instance}-${cfg.name}-${cfg.appId.slice(0, 8)}`;
}

export function networkName(instance: string, ni: Pick<NetworkInstance, 'name'>): string {
  return `zedbox-${instance}-${ni.name}`;
}

export function ownedLabels(instance: string): Record<string, string> {
  return { [LABEL_OWNED]: '1', [LABEL_INSTANCE]: instance };
}

/** The networks an app joins, in order, by Docker name; an id without a NetworkInstanceConfig is an error. */
export function appNetworks(cfg: DomainConfig, instance: string, nis: ReadonlyMap<string, NetworkInstance>): string[] {
  return cfg.networkInstanceIds.map((id) => {
    const ni = nis.get(id);
    if (!ni) throw new Error(`DomainConfig ${cfg.appId}: networkInstanceIds names ${id}, which has no NetworkInstanceConfig`);
    return networkName(instance, ni);
  });
}

/** Create options; the first network is the container's NetworkMode, the others are connected after create. */
/** openSecret opens env values sealed to the device: the clear text goes only to the engine. */
export function createOptions(
  cfg: DomainConfig, instance: string, networks: string[], openSecret: (v: MaybeSealedString) => string,
): Docker.ContainerCreateOptions {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp?: string; HostPort: string }>> = {};
  for (const p of cfg.ports) {
    const key = `${p.container}/${p.protocol ?? 'tcp'}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ ...(p.hostIp ? { HostIp: p.hostIp } : {}), HostPort: String(p.host) });
  }
  return {
    name: containerName(instance, cfg),
    Image: cfg.imageRef,
    ...(cfg.entrypoint ? { Entrypoint: [...cfg.entrypoint] } : {}),
    ...(cfg.command ? { Cmd: [...cfg.command] } : {}),
    Env: Object.entries(cfg.env).map(([k, v]) => `${k}=${openEnv(k, v, openSecret)}`),
    Labels: { ...ownedLabels(instance), [LABEL_APP]: cfg.appId, [LABEL_SPEC]: cfg.specHash },
    ExposedPorts: exposed,
    HostConfig: {
      PortBindings: bindings,
      Memory: cfg.memoryMiB * 1024 * 1024,
      NanoCpus: Math.round(cfg.cpus * 1e9),
      Binds: cfg.mounts.map((m) => `${m.hostPath}:${m.containerPath}:${m.readonly ? 'ro' : 'rw'}`),
      // tini as PID 1 forwards SIGTERM, so a stop takes ~0.1 s instead of the whole timeout.
      Init: true,
      // domainmgr restarts containers itself, so it can count exits and cap a crash loop.
      RestartPolicy: { Name: 'no' },
      NetworkMode: networks[0] ?? 'bridge',
    },
  };
}

function openEnv(name: string, value: MaybeSealedString, open: (v: MaybeSealedString) => string): string {
  try {
    return open(value);
  } catch (err) {
    throw new Error(`env ${name}: ${(err as Error).message}`);
  }
}
