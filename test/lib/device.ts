// A device for end-to-end tests and benchmarks: the built bundle dist/zedbox
// (every agent in one process) with its own temporary run/persist/config dirs,
// its own ZEDBOX_INSTANCE (so its Docker objects are told apart from everyone
// else's on the shared engine) and a --config file the test writes; plus a bus
// client in the test process to read what the agents publish. Everything the
// device made in Docker is removed by cleanup().
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Static, TSchema } from '@sinclair/typebox';
import { dockerClient, isDockerNoop, LABEL_INSTANCE } from '../../lib/docker';
import type { Dirs } from '../../lib/dirs';
import { Logger, type Level } from '../../lib/log';
import { Bus } from '../../pubsub/bus';
import type { CollectionSpec } from '../../pubsub/catalog';
import { AgentStatusCollection, AppInstanceStatusCollection, type AgentStatus, type AppInstanceStatus } from '../../pubsub/collections';
import { AGENT_NAMES, EVERY_AGENT } from '../../pubsub/owners';
import type { Subscription } from '../../pubsub/subscription';
import { ZEDBOX, msgIs, start, type Proc } from './proc';

export interface DeviceOptions {
  /** Written before the first start (default none: zedagent then has no config file). */
  config?: unknown;
  /** Default: "e2e" + 8 random hex digits. Docker objects carry it (label org.zedbox.instance). */
  instance?: string;
  /** More zedbox arguments, e.g. ['--restart-min-ms', '200']. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long to wait for "all agents ready" on each start (default 30 s). */
  readyTimeoutMs?: number;
  /** The test-side bus client's log level (default warn, or TEST_LOG_LEVEL). */
  logLevel?: Level;
}

const DEFAULT_READY_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;

export class Device {
  readonly root: string;
  readonly dirs: Dirs;
  readonly configFile: string;
  readonly instance: string;
  /** The test's own bus client on the device's bus (agent name "e2e-test"). */
  readonly bus: Bus;
  private proc?: Proc;
  /** Output lines of earlier processes (restarts), oldest first. */
  private readonly pastLines: string[] = [];
  private starts = 0;
  private readonly subs = new Map<string, Subscription>();

  constructor(private readonly opts: DeviceOptions = {}) {
    // Short: ipc socket paths are limited to 107 bytes.
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'zbd-'));
    this.dirs = { run: path.join(this.root, 'run'), persist: path.join(this.root, 'persist'), config: path.join(this.root, 'config') };
    for (const d of Object.values(this.dirs)) fs.mkdirSync(d, { recursive: true });
    this.configFile = path.join(this.dirs.config, 'device-config.json');
    this.instance = opts.instance ?? `e2e${randomBytes(4).toString('hex')}`;
    const log = new Logger({ source: 'e2e-test', level: opts.logLevel ?? (process.env.TEST_LOG_LEVEL as Level | undefined) ?? 'warn', format: 'text' });
    this.bus = new Bus({ runDir: this.dirs.run, persistDir: this.dirs.persist, log });
    if (opts.config !== undefined) this.writeConfig(opts.config);
  }

  get pid(): number | undefined {
    return this.running ? this.proc?.child.pid : undefined;
  }

  get running(): boolean {
    const c = this.proc?.child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  /** Starts dist/zedbox all and resolves when it says "all agents ready". */
  async start(): Promise<void> {
    if (this.running) throw new Error(`device ${this.instance} is already running (pid ${this.pid})`);
    if (!fs.existsSync(ZEDBOX)) throw new Error(`${ZEDBOX} does not exist: run \`make build\` first`);
    if (this.proc) this.pastLines.push(...this.proc.lines);
    this.starts++;
    this.pastLines.push(`--- device ${this.instance}: start ${this.starts}`);
    const d = this.dirs;
    this.proc = start(ZEDBOX, ['all', '--run-dir', d.run, '--persist-dir', d.persist, '--config-dir', d.config, '--config', this.configFile, ...(this.opts.args ?? [])],
      { ZEDBOX_INSTANCE: this.instance, ...this.opts.env });
    await this.proc.waitFor(msgIs('all agents ready'), `device ${this.instance} ready`, this.opts.readyTimeoutMs ?? DEFAULT_READY_MS);
  }

  /** Writes the device config atomically (a temporary file renamed over it). */
  writeConfig(config: unknown): void {
    const tmp = `${this.configFile}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
    fs.renameSync(tmp, this.configFile);
  }

  /** SIGKILL, as a power cut would: nothing is cleaned up by the device. */
  async kill9(): Promise<void> {
    if (!this.proc || !this.running) return;
    this.proc.child.kill('SIGKILL');
    await this.proc.exited;
  }

  /** SIGTERM and wait for the exit; SIGKILL after 20 s (then it throws: a clean stop is expected). */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const proc = this.proc;
    if (!proc) return { code: null, signal: null };
    if (!this.running) return proc.exited;
    proc.child.kill('SIGTERM');
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const exit = await proc.exited;
    clearTimeout(timer);
    if (exit.signal === 'SIGKILL') throw new Error(`device ${this.instance} did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM; output:\n${this.tail()}`);
    return exit;
  }

  /** A new process on the same dirs and instance (stops the running one first, with SIGTERM). */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    await this.start();
  }

  /** Every output line of every start, with a "--- device …: start N" line before each. */
  logs(): string[] {
    return [...this.pastLines, ...(this.proc?.lines ?? [])];
  }

  /** The current process's output lines parsed as JSON log records. */
  logRecords(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.proc?.lines ?? []) {
      try { out.push(JSON.parse(line) as Record<string, unknown>); } catch { /* not a JSON line */ }
    }
    return out;
  }

  tail(n = 30): string {
    return this.logs().slice(-n).join('\n');
  }

  /** The process's resident memory in KiB (0 when not running). */
  rssKb(): number {
    const pid = this.pid;
    if (!pid) return 0;
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** A subscription kept open until cleanup(); `owner` is needed for AgentStatus (published by every agent). */
  watch<S extends TSchema>(type: CollectionSpec<S>, owner?: string): Subscription<S> {
    const id = `${type.type}/${owner ?? ''}`;
    let sub = this.subs.get(id);
    if (!sub) {
      if (type.owner === EVERY_AGENT && !owner) throw new Error(`${type.type} is published by every agent: say which owner`);
      sub = this.bus.subscribe(type as CollectionSpec, { agent: 'e2e-test', owner: type.owner === EVERY_AGENT ? owner : undefined });
      this.subs.set(id, sub);
    }
    return sub as unknown as Subscription<S>;
  }

  get<S extends TSchema>(type: CollectionSpec<S>, key: string, owner?: string): Readonly<Static<S>> | undefined {
    return this.watch(type, owner).get(key);
  }

  /** Resolves with the first value under `key` for which pred holds; the error shows the last value and the device's output. */
  async waitFor<S extends TSchema>(
    type: CollectionSpec<S>, key: string, pred: (v: Readonly<Static<S>> | undefined) => boolean,
    what: string, timeoutMs = 60_000, owner?: string,
  ): Promise<Readonly<Static<S>> | undefined> {
    const sub = this.watch(type, owner);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = sub.get(key);
      if (pred(v)) return v;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${type.type}/${key}: ${JSON.stringify(v)}\ndevice output:\n${this.tail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async waitForApp(appId: string, pred: (s: Readonly<AppInstanceStatus> | undefined) => boolean, what: string, timeoutMs = 60_000): Promise<Readonly<AppInstanceStatus> | undefined> {
    return this.waitFor(AppInstanceStatusCollection, appId, pred, what, timeoutMs);
  }

  agentStatus(agent: string): Readonly<AgentStatus> | undefined {
    return this.get(AgentStatusCollection, agent, agent);
  }

  /** Waits until every agent says `state` from the current process; returns their statuses. */
  async waitForAgents(state: AgentStatus['state'] = 'running', timeoutMs = 30_000): Promise<Array<Readonly<AgentStatus>>> {
    const out: Array<Readonly<AgentStatus>> = [];
    for (const agent of AGENT_NAMES) {
      const pid = this.pid;
      const s = await this.waitFor(AgentStatusCollection, agent, (v) => v?.state === state && v.pid === pid,
        `${agent} ${state} in pid ${pid}`, timeoutMs, agent);
      if (s) out.push(s);
    }
    return out;
  }

  /** Stops the device, closes the bus client, removes its Docker objects and its directories. */
  async cleanup(): Promise<void> {
    if (this.running) {
      try { await this.stop(); } catch { /* killed: cleanup goes on */ }
    }
    for (const s of this.subs.values()) s.close();
    this.subs.clear();
    await this.bus.close();
    await removeDockerObjects(this.instance);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

export async function startDevice(opts: DeviceOptions = {}): Promise<Device> {
  const device = new Device(opts);
  try {
    await device.start();
  } catch (err) {
    await device.cleanup();
    throw err;
  }
  return device;
}

/**
 * Removes what a device made on the shared engine: containers and networks
 * labelled with its instance, images labelled with it or tagged zedbox-<instance> and a separator (-_./:).
 * Returns what it removed (for a test to assert or print).
 */
export async function removeDockerObjects(instance: string, socketPath = '/var/run/docker.sock'): Promise<{ containers: number; networks: number; images: number }> {
  const docker = dockerClient({ dockerSocket: socketPath });
  const label = { label: [`${LABEL_INSTANCE}=${instance}`] };
  const ignoreGone = (err: unknown): void => { if (!isDockerNoop(err)) throw err; };
  const containers = await docker.listContainers({ all: true, filters: label });
  for (const c of containers) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(ignoreGone);
  const networks = await docker.listNetworks({ filters: label });
  for (const n of networks) await docker.getNetwork(n.Id).remove().catch(ignoreGone);
  // zedbox-<instance> followed by a separator: instance "ab" must not take "zedbox-abc-…". Image
  // repositories are lowercase, so the instance may appear as volumemgr writes it (lowercase, [^a-z0-9] runs as "-").
  const forms = new Set([instance, instance.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '')]);
  const escaped = [...forms].map((f) => f.replace(/[^A-Za-z0-9]/g, '\\$&'));
  const ours = new RegExp(`^zedbox-(${escaped.join('|')})[-_./:]`);
  const images = new Set<string>();
  for (const img of await docker.listImages({ filters: label })) images.add(img.Id);
  for (const img of await docker.listImages()) {
    for (const tag of img.RepoTags ?? []) if (ours.test(tag)) images.add(tag);
  }
  let removed = 0;
  for (const ref of images) {
    // By tag: an image another tag also names keeps that tag. 409 (in use elsewhere) is left alone.
    await docker.getImage(ref).remove().then(() => removed++, (err: unknown) => {
      if ((err as { statusCode?: number }).statusCode !== 409) ignoreGone(err);
    });
  }
  return { containers: containers.length, networks: networks.length, images: removed };
}
