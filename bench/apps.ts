// App benchmarks: how long zedbox takes from a config naming an image to the app
// answering on its port, against doing the same by hand in the same run (skopeo
// copy to a docker-archive, docker load, docker run); then 50 apps in one config,
// and one change among the 50, counting the work it causes on the bus and in
// Docker, which should scale with the change (1 app), not with the config (50).
// Every run uses a fresh image in a fresh repository, so nothing is cached.
// Env: BENCH_APP_RUNS (3), BENCH_APP_COUNT (50), BENCH_APP_RANDOM_BYTES (0: extra
// incompressible bytes in the image), BENCH_APP_TIMEOUT_MS (180000),
// BENCH_APP_PARTS (baseline,zedbox,scale). Run alone: npx tsx bench/apps.ts
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Value } from '@sinclair/typebox/value';
import { dockerClient, LABEL_INSTANCE } from '../lib/docker';
import { AppInstanceStatusCollection, CATALOG, DeviceConfigSchema, type App, type AppInstanceStatus, type DeviceConfig } from '../pubsub/collections';
import { EVERY_AGENT } from '../pubsub/owners';
import type { Subscription } from '../pubsub/subscription';
import { startDevice, type Device } from '../test/lib/device';
import { makeImage, removeImage, uniqueSuffix, type TestImage } from '../test/lib/images';
import { ensureServices } from '../test/lib/services';
import { median, msSince } from './common';

const exec = promisify(execFile);
const RUNS = Number(process.env.BENCH_APP_RUNS ?? 3);
const APP_COUNT = Number(process.env.BENCH_APP_COUNT ?? 50);
const RANDOM_BYTES = Number(process.env.BENCH_APP_RANDOM_BYTES ?? 0);
const TIMEOUT_MS = Number(process.env.BENCH_APP_TIMEOUT_MS ?? 180_000);
const PARTS = (process.env.BENCH_APP_PARTS ?? 'baseline,zedbox,scale').split(',');
const TARGET_RATIO = 1.25;
/** Bus updates and Docker events keep arriving a little after the app answers; wait this long for them. */
const SETTLE_MS = 3000;
const APP_PORT = 8080;
const MARKER = 'zedbox bench app\n';
const COMMAND = ['httpd', '-f', '-p', String(APP_PORT), '-h', '/www'];
const RESOURCES = { memoryMiB: 64, cpus: 1 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fmtMs = (x: number): string => `${x.toFixed(0)} ms`;

export function benchImage(): Promise<TestImage> {
  return makeImage({ repo: 'bench/app', files: { '/www/index.html': MARKER }, randomBytes: RANDOM_BYTES || undefined, cmd: COMMAND });
}

/** Free loopback ports (bound and released; another process could take one in between, unlikely here). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Resolves once http://127.0.0.1:port/index.html serves the marker. */
export async function waitPort(port: number, deadline: number): Promise<void> {
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/index.html`, { signal: AbortSignal.timeout(1000) });
      if (res.ok && (await res.text()) === MARKER) return;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`port ${port} did not answer in time`);
    await sleep(20);
  }
}

/** The image must not stay in the engine: the next run would find its layers cached. */
export async function purgeFromEngine(img: TestImage): Promise<string | undefined> {
  await removeImage(img);
  const left = await exec('docker', ['image', 'inspect', img.configDigest]).then(() => true, () => false);
  if (!left) return undefined;
  await exec('docker', ['image', 'rm', '-f', img.configDigest]).catch(() => undefined);
  return `image ${img.configDigest.slice(7, 19)} of ${img.repo} was still in the engine after the run (removed)`;
}

// ---- baseline: by hand

async function baselineOnce(): Promise<number> {
  const img = await benchImage();
  const [port] = await freePorts(1);
  const name = `zbbench-${uniqueSuffix()}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zbbench-'));
  try {
    const t0 = process.hrtime.bigint();
    await exec('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${img.ref}`, `docker-archive:${tmp}/image.tar:${img.ref}`]);
    await exec('docker', ['load', '-q', '-i', `${tmp}/image.tar`]);
    await exec('docker', ['run', '-d', '--init', '--name', name, '-p', `127.0.0.1:${port}:${APP_PORT}`,
      '--memory', `${RESOURCES.memoryMiB}m`, '--cpus', String(RESOURCES.cpus), img.ref, ...COMMAND]);
    await waitPort(port as number, Date.now() + TIMEOUT_MS);
    return msSince(t0);
  } finally {
    await exec('docker', ['rm', '-f', name]).catch(() => undefined);
    await purgeFromEngine(img);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---- the device config

export interface BenchApp { id: string; volumeId: string; name: string; port: number; env?: Record<string, string>; restartCounter?: number }
/** What one bench config names; ids stay the same across its versions (a new id would be a new object). */
export interface BenchPlan { img: TestImage; datastoreId: string; contentTreeId: string; apps: BenchApp[] }

export function benchPlan(img: TestImage, ports: number[]): BenchPlan {
  const apps = ports.map((port, i) => ({ id: randomUUID(), volumeId: randomUUID(), name: `bench-${i}`, port, restartCounter: 1 }));
  return { img, datastoreId: randomUUID(), contentTreeId: randomUUID(), apps };
}

/** apps -> volumes -> one content tree -> the registry datastore; each app's only volume is its root disk. */
export function deviceConfig(p: BenchPlan, version: string): DeviceConfig {
  const config: DeviceConfig = {
    version,
    datastores: [{ id: p.datastoreId, type: 'registry', url: p.img.registryUrl }],
    contentTrees: [{ id: p.contentTreeId, name: p.img.repo, datastoreIds: [p.datastoreId], url: p.img.repoTag, format: 'container' }],
    volumes: p.apps.map((a) => ({ id: a.volumeId, name: `${a.name}-root`, origin: { type: 'download' as const, contentTreeId: p.contentTreeId } })),
    apps: p.apps.map((a): App => ({
      id: a.id, name: a.name, activate: true, volumeRefs: [{ volumeId: a.volumeId }], resources: RESOURCES, command: COMMAND,
      ports: [{ container: APP_PORT, host: a.port, hostIp: '127.0.0.1' }],
      ...(a.env ? { env: a.env } : {}), ...(a.restartCounter !== undefined ? { restartCounter: a.restartCounter } : {}),
    })),
  };
  const errors = [...Value.Errors(DeviceConfigSchema, config)].slice(0, 3).map((e) => `${e.path}: ${e.message}`);
  if (errors.length) throw new Error(`bench: the device config it built is invalid: ${errors.join('; ')}`);
  return config;
}

const running = (s: Readonly<AppInstanceStatus> | undefined): boolean => s?.state === 'RUNNING';

// ---- zedbox: one app

export async function zedboxOnce(): Promise<number> {
  const img = await benchImage();
  const plan = benchPlan(img, await freePorts(1));
  const app = plan.apps[0] as BenchApp;
  const device = await startDevice({ config: { version: '0' } });
  try {
    await device.waitForAgents('running');
    const t0 = process.hrtime.bigint();
    device.writeConfig(deviceConfig(plan, '1'));
    await device.waitForApp(app.id, running, `${app.name} RUNNING`, TIMEOUT_MS);
    await waitPort(app.port, Date.now() + TIMEOUT_MS);
    return msSince(t0);
  } finally {
    await device.cleanup();
    await purgeFromEngine(img);
  }
}

async function compare(out: string[]): Promise<void> {
  const base: number[] = [];
  const zed: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (PARTS.includes('baseline')) {
      const b = await baselineOnce();
      base.push(b);
      out.push(`run ${i + 1}: by hand (skopeo copy + docker load + docker run) ${fmtMs(b)}`);
    }
    if (PARTS.includes('zedbox')) {
      try {
        const z = await zedboxOnce();
        zed.push(z);
        out.push(`run ${i + 1}: zedbox (config written -> RUNNING and port answers) ${fmtMs(z)}`);
      } catch (err) {
        out.push(`run ${i + 1}: zedbox FAILED: ${firstLines((err as Error).message, 12)}`);
        break; // broken: do not spend the time budget on it
      }
    }
  }
  const mb = median(base);
  if (base.length) out.push(`=> app by hand: ${fmtMs(mb)} median of ${base.length} (image ${RANDOM_BYTES ? `busybox + ${RANDOM_BYTES} random bytes` : 'busybox, ~1 MB'})`);
  if (zed.length) {
    const ratio = base.length ? median(zed) / mb : NaN;
    out.push(`=> app via zedbox: ${fmtMs(median(zed))} median of ${zed.length}, ratio to by hand ${ratio.toFixed(2)}x | target <= ${TARGET_RATIO}x ${ratio <= TARGET_RATIO ? 'PASS' : 'FAIL'}`);
  } else if (PARTS.includes('zedbox')) {
    out.push('=> app via zedbox: no successful run');
  }
}

const firstLines = (s: string, n: number): string => s.split('\n').slice(0, n).join('\n      ');

// ---- the work a change causes: bus updates and Docker events

export class WorkCounter {
  private counts = new Map<string, { updates: number; keys: Set<string> }>();
  private docker = new Map<string, number>();
  private readonly subs: Subscription[] = [];
  private events?: NodeJS.ReadableStream;

  constructor(private readonly device: Device, private readonly imageId: string) {}

  async start(): Promise<void> {
    // Every collection of the pipeline; AgentStatus (liveness) and DomainMetric (periodic samples) are not work.
    for (const spec of CATALOG.values()) {
      if (spec.owner === EVERY_AGENT || spec.type === 'DomainMetric') continue;
      const count = (key: string): void => {
        const c = this.counts.get(spec.type) ?? { updates: 0, keys: new Set<string>() };
        c.updates++;
        c.keys.add(key);
        this.counts.set(spec.type, c);
      };
      this.subs.push(this.device.bus.subscribe(spec, { agent: 'e2e-bench', create: count, modify: count, delete: count }));
    }
    // What was there before is not work done for the config to come.
    await Promise.race([Promise.all(this.subs.map((s) => s.whenSynchronized())), sleep(5000)]);
    this.reset();
    const docker = dockerClient({ dockerSocket: ensureServices().dockerSocket });
    this.events = (await docker.getEvents()) as NodeJS.ReadableStream;
    let buf = '';
    this.events.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.onDockerEvent(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
  }

  private onDockerEvent(line: string): void {
    let e: { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try { e = JSON.parse(line); } catch { return; }
    const attrs = e.Actor?.Attributes ?? {};
    // Containers and networks carry the device's label; image events carry the image id, which for a
    // loaded image is its config digest (the engine is shared: other tests' events are not counted).
    const ours = attrs[LABEL_INSTANCE] === this.device.instance || (e.Type === 'image' && e.Actor?.ID === this.imageId);
    if (!ours || !e.Action || e.Action.startsWith('exec_')) return;
    const k = `${e.Type}:${e.Action.split(':')[0]}`;
    this.docker.set(k, (this.docker.get(k) ?? 0) + 1);
  }

  reset(): void {
    this.counts = new Map();
    this.docker = new Map();
  }

  report(): string[] {
    const bus = [...this.counts].sort(([a], [b]) => a.localeCompare(b))
      .map(([type, c]) => `${type} ${c.updates} (${c.keys.size} key${c.keys.size === 1 ? '' : 's'})`);
    const total = [...this.counts.values()].reduce((n, c) => n + c.updates, 0);
    const docker = [...this.docker].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`);
    return [`bus updates ${total}: ${bus.join(', ') || 'none'}`, `docker events: ${docker.join(', ') || 'none'}`];
  }

  stop(): void {
    for (const s of this.subs) s.close();
    (this.events as unknown as { destroy?: () => void })?.destroy?.();
  }
}

// ---- zedbox: many apps, then one change

async function waitAll(device: Device, apps: BenchApp[], pred: (a: BenchApp, s: Readonly<AppInstanceStatus> | undefined) => boolean, what: string): Promise<void> {
  const sub = device.watch(AppInstanceStatusCollection);
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const pending = apps.filter((a) => !pred(a, sub.get(a.id)));
    if (pending.length === 0) break;
    if (Date.now() > deadline) {
      const states = pending.slice(0, 5).map((a) => `${a.name}: ${sub.get(a.id)?.state ?? 'no status'}${sub.get(a.id)?.error ? ` (${sub.get(a.id)?.error?.error})` : ''}`);
      throw new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}: ${pending.length} of ${apps.length} not there; ${states.join('; ')}\ndevice output:\n${device.tail(15)}`);
    }
    await sleep(50);
  }
  await Promise.all(apps.map((a) => waitPort(a.port, deadline)));
}

async function startMany(device: Device, plan: BenchPlan, work: WorkCounter, out: string[]): Promise<void> {
  const t0 = process.hrtime.bigint();
  device.writeConfig(deviceConfig(plan, '1'));
  await waitAll(device, plan.apps, (_a, s) => running(s), `${plan.apps.length} apps RUNNING`);
  const allMs = msSince(t0);
  const rss = device.rssKb() / 1024;
  await sleep(SETTLE_MS);
  out.push(`=> ${plan.apps.length} apps in one config: all RUNNING and answering after ${fmtMs(allMs)}; device RSS ${rss.toFixed(1)} MB`);
  out.push(...work.report().map((l) => `   to start ${plan.apps.length}: ${l}`));
}

/** Changes the middle app's env and bumps its restart counter; measures until it runs again. */
async function changeOne(device: Device, plan: BenchPlan, work: WorkCounter, out: string[]): Promise<void> {
  const { apps } = plan;
  const statuses = device.watch(AppInstanceStatusCollection);
  const containerBefore = new Map(apps.map((a) => [a.id, statuses.get(a.id)?.containerId]));
  const changed = apps[Math.floor(apps.length / 2)] as BenchApp;
  const bootBefore = statuses.get(changed.id)?.bootTime;
  changed.env = { BENCH_GENERATION: '2' };
  changed.restartCounter = (changed.restartCounter ?? 0) + 1;
  let leftRunning = false;
  const watcher = device.bus.subscribe(AppInstanceStatusCollection, {
    agent: 'e2e-bench', create: () => {}, modify: (k, v) => { if (k === changed.id && v.state !== 'RUNNING') leftRunning = true; },
  });
  try {
    work.reset();
    const t0 = process.hrtime.bigint();
    device.writeConfig(deviceConfig(plan, '2'));
    // Restarted shows as a new container, a new boot time, or a state other than RUNNING on the way.
    const restarted = (s: Readonly<AppInstanceStatus> | undefined): boolean =>
      running(s) && (leftRunning || s?.containerId !== containerBefore.get(changed.id) || s?.bootTime !== bootBefore);
    await waitAll(device, [changed], (_a, s) => restarted(s), `${changed.name} RUNNING again`);
    const oneMs = msSince(t0);
    await sleep(SETTLE_MS);
    const others = apps.filter((a) => a !== changed && statuses.get(a.id)?.containerId !== containerBefore.get(a.id)).length;
    out.push(`=> change 1 of ${apps.length} apps (env + restartCounter): RUNNING again after ${fmtMs(oneMs)}; other apps' containers replaced: ${others}`);
    out.push(...work.report().map((l) => `   for the change: ${l}`));
  } finally {
    watcher.close();
  }
}

async function scale(out: string[]): Promise<void> {
  const img = await benchImage();
  const plan = benchPlan(img, await freePorts(APP_COUNT));
  const device = await startDevice({ config: { version: '0' } });
  const work = new WorkCounter(device, img.configDigest);
  try {
    await device.waitForAgents('running');
    await work.start();
    await startMany(device, plan, work, out);
    await changeOne(device, plan, work, out);
  } catch (err) {
    out.push(`=> ${APP_COUNT} apps: FAILED: ${firstLines((err as Error).message, 12)}`);
  } finally {
    work.stop();
    await device.cleanup();
    const left = await purgeFromEngine(img);
    if (left) out.push(`note: ${left}`);
  }
}

/** Output lines; those starting with "=> " are results for the summary. */
export async function benchApps(): Promise<string[]> {
  ensureServices();
  const out: string[] = [`runs ${RUNS}, apps ${APP_COUNT}, image busybox httpd${RANDOM_BYTES ? ` + ${RANDOM_BYTES} random bytes` : ''}, parts ${PARTS.join(',')}`];
  if (PARTS.includes('baseline') || PARTS.includes('zedbox')) await compare(out);
  if (PARTS.includes('scale')) await scale(out);
  return out;
}

if (require.main === module) {
  benchApps().then(
    (lines) => { for (const l of lines) console.log(l); process.exit(0); },
    (err) => { console.error(`bench apps failed: ${(err as Error).stack ?? err}`); process.exit(1); },
  );
}
