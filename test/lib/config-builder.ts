// Builds device configs for end-to-end tests: apps by name, each with its own
// content tree and root volume (and optional blank volumes), ids that stay the
// same from one version of the config to the next, and a version that grows.
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import { Value } from '@sinclair/typebox/value';
import { DeviceConfigSchema, type App, type DeviceConfig } from '../../pubsub/collections/config';

/** The port every test app's busybox httpd listens on inside its container. */
export const APP_PORT = 8080;

export interface TestApp {
  /** repository:tag in the registry the datastore names. */
  image: string;
  /** Host port mapped to APP_PORT (on 127.0.0.1). */
  port: number;
  /** What index.html says; default the app's name. */
  page?: string;
  /** Blank volumes mounted at these directories; the first one also holds the page and a boots.txt line per start. */
  dataDirs?: string[];
  activate?: boolean;
  restartCounter?: number;
  purgeCounter?: number;
  env?: Record<string, string>;
  /** Pin the content tree to this digest (sha256:...). */
  sha256?: string;
  /** Another datastore url for this app's content (e.g. a proxy in front of the registry). */
  datastoreUrl?: string;
  memoryMiB?: number;
  /** Replaces the default httpd command. */
  command?: string[];
}

interface Ids { app: string; contentTree: string; root: string; data: string[] }

export class ConfigBuilder {
  readonly apps = new Map<string, TestApp>();
  private readonly ids = new Map<string, Ids>();
  private readonly datastores = new Map<string, string>();
  private version = 0;

  constructor(readonly registryUrl: string) {}

  /** The version the last build() gave. */
  get lastVersion(): string {
    return String(this.version);
  }

  set(name: string, app: TestApp): this {
    this.apps.set(name, app);
    return this;
  }

  update(name: string, change: Partial<TestApp>): this {
    const app = this.apps.get(name);
    if (!app) throw new Error(`no app ${name}`);
    this.apps.set(name, { ...app, ...change });
    return this;
  }

  remove(name: string): this {
    this.apps.delete(name);
    return this;
  }

  idsOf(name: string): Ids {
    let ids = this.ids.get(name);
    if (!ids) this.ids.set(name, (ids = { app: randomUUID(), contentTree: randomUUID(), root: randomUUID(), data: [] }));
    const want = this.apps.get(name)?.dataDirs?.length ?? 0;
    while (ids.data.length < want) ids.data.push(randomUUID());
    return ids;
  }

  appId(name: string): string {
    return this.idsOf(name).app;
  }

  /** The next version of the config (validated against the schema, so a test never sends a broken one by mistake). */
  build(extra: Partial<DeviceConfig> = {}): DeviceConfig {
    this.version += 1;
    const config: DeviceConfig = { version: String(this.version), datastores: [], contentTrees: [], volumes: [], apps: [], ...extra };
    for (const [name, a] of this.apps) {
      const ids = this.idsOf(name);
      const ds = this.datastore(a.datastoreUrl ?? this.registryUrl);
      if (!config.datastores?.some((d) => d.id === ds)) config.datastores?.push({ id: ds, type: 'registry', url: a.datastoreUrl ?? this.registryUrl });
      config.contentTrees?.push({
        id: ids.contentTree, name, datastoreIds: [ds], url: a.image, format: 'container', ...(a.sha256 ? { sha256: a.sha256 } : {}),
      });
      config.volumes?.push({ id: ids.root, name: `${name}-root`, origin: { type: 'download', contentTreeId: ids.contentTree } });
      const dirs = a.dataDirs ?? [];
      dirs.forEach((_, i) => config.volumes?.push({ id: ids.data[i] as string, name: `${name}-data${i}`, origin: { type: 'blank' } }));
      config.apps?.push(appOf(name, a, ids));
    }
    const errors = [...Value.Errors(DeviceConfigSchema, config)].slice(0, 3).map((e) => `${e.path}: ${e.message}`);
    if (errors.length) throw new Error(`test config is invalid: ${errors.join('; ')}`);
    return config;
  }

  private datastore(url: string): string {
    let id = this.datastores.get(url);
    if (!id) this.datastores.set(url, (id = randomUUID()));
    return id;
  }
}

function appOf(name: string, a: TestApp, ids: Ids): App {
  const dirs = a.dataDirs ?? [];
  const www = dirs[0] ?? '/www';
  const page = a.page ?? name;
  const boot = dirs[0] ? `echo booted >> ${www}/boots.txt && ` : '';
  return {
    id: ids.app,
    name,
    activate: a.activate ?? true,
    volumeRefs: [{ volumeId: ids.root }, ...dirs.map((d, i) => ({ volumeId: ids.data[i] as string, mountDir: d }))],
    resources: { memoryMiB: a.memoryMiB ?? 32, cpus: 0.5 },
    command: a.command ?? ['sh', '-c', `mkdir -p ${www} && echo ${page} > ${www}/index.html && ${boot}exec httpd -f -p ${APP_PORT} -h ${www}`],
    ports: [{ container: APP_PORT, host: a.port, hostIp: '127.0.0.1' }],
    ...(a.env ? { env: a.env } : {}),
    ...(a.restartCounter !== undefined ? { restartCounter: a.restartCounter } : {}),
    ...(a.purgeCounter !== undefined ? { purgeCounter: a.purgeCounter } : {}),
  };
}

/** Ports nothing listens on right now (the kernel picks them). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** One port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** GET http://127.0.0.1:port/path, retried until it answers or the deadline passes. */
export async function httpGet(port: number, path = '/', timeoutMs = 15_000): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
      return { status: r.status, body: await r.text() };
    } catch (err) {
      last = err;
      if (Date.now() > deadline) throw new Error(`http://127.0.0.1:${port}${path} did not answer in ${timeoutMs} ms: ${String(last)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
