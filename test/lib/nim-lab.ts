// A small network for nim's tests and benchmark: a "device" namespace where nim
// runs, a "router" namespace holding the far end of each port (veth pairs), the
// controller's broker (a real Mosquitto on 10.200.9.1:1883 in the router, reached
// through any port's gateway) and, when asked, busybox udhcpd. Names are unique per
// run; cleanup() deletes the namespaces, which takes their links with them. The
// test process stays in the host namespace and talks to nim over the bus (ipc
// sockets are files, so they work across network namespaces).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Static, TSchema } from '@sinclair/typebox';
import { Logger } from '../../lib/log';
import { Bus } from '../../pubsub/bus';
import type { CollectionSpec } from '../../pubsub/catalog';
import {
  ConfigItemValueMapCollection, DeviceNetworkStatusCollection, DevicePortConfigCollection, DevicePortConfigListCollection,
  defaultConfigItems, type NetworkPortConfig,
} from '../../pubsub/collections';
import type { Publication } from '../../pubsub/publication';
import type { Subscription } from '../../pubsub/subscription';
import { ROOT, start, type Proc } from './proc';
import { testProvisioning } from './provisioning';

export const BROKER_IP = '10.200.9.1';
export const BROKER_PORT = 1883;

export interface LabPort {
  /** The device's interface name (the router's end is "r" + name). */
  name: string;
  /** Third octet: the port's subnet is 10.200.<n>.0/24, the router 10.200.<n>.1. */
  net: number;
  /** Bring the device's end up (default true). */
  up?: boolean;
  mac?: string;
}

export const gatewayOf = (p: LabPort): string => `10.200.${p.net}.1`;

/** Namespaces still existing when the process exits (a crashed test) are deleted then. */
const live = new Set<string>();
const procs = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of procs) c.kill('SIGKILL');
  for (const ns of live) try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
});

export function sh(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class NimLab {
  readonly id = `${process.pid % 100000}${randomBytes(2).toString('hex')}`;
  readonly dev = `zbd${this.id}`;
  readonly router = `zbr${this.id}`;
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'zbnim-'));
  readonly dirs = { run: path.join(this.root, 'run'), persist: path.join(this.root, 'persist'), config: path.join(this.root, 'config') };
  readonly resolvConf = path.join(this.root, 'resolv.conf');
  readonly log = new Logger({ source: 'test', level: 'warn', format: 'text' });
  bus: Bus;
  nim: Proc | undefined;
  /** Lines of the nim runs that ended (for a failing test's diagnosis). */
  private readonly pastLines: string[] = [];
  private broker: ChildProcess | undefined;
  private readonly others: ChildProcess[] = [];
  private zedagent: Promise<{ dpc: Publication<typeof DevicePortConfigCollection.schema>; items: Publication<typeof ConfigItemValueMapCollection.schema> }> | undefined;
  private readonly subs = new Map<string, Subscription>();

  constructor(readonly ports: LabPort[]) {
    for (const d of Object.values(this.dirs)) fs.mkdirSync(d, { recursive: true });
    this.bus = new Bus({ runDir: this.dirs.run, persistDir: this.dirs.persist, log: this.log });
  }

  /** Makes the namespaces and the links. */
  setUp(): this {
    for (const ns of [this.dev, this.router]) {
      sh(['ip', 'netns', 'add', ns]);
      live.add(ns);
      this.ip(ns, ['link', 'set', 'lo', 'up']);
    }
    // No IPv6 duplicate address detection: link-local addresses are final at once, so snapshots compare.
    sh(['ip', 'netns', 'exec', this.dev, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
    this.ip(this.router, ['addr', 'add', `${BROKER_IP}/32`, 'dev', 'lo']);
    for (const p of this.ports) {
      sh(['ip', 'link', 'add', p.name, ...(p.mac ? ['address', p.mac] : []), 'netns', this.dev, 'type', 'veth', 'peer', 'name', `r${p.name}`, 'netns', this.router]);
      this.ip(this.router, ['addr', 'add', `${gatewayOf(p)}/24`, 'dev', `r${p.name}`]);
      this.ip(this.router, ['link', 'set', `r${p.name}`, 'up']);
      if (p.up !== false) this.ip(this.dev, ['link', 'set', p.name, 'up']);
    }
    return this;
  }

  ip(ns: string, args: string[]): string {
    return sh(['ip', '-n', ns, ...args]);
  }

  ipJson<T = Record<string, unknown>>(ns: string, args: string[]): T[] {
    const out = sh(['ip', '-j', '-n', ns, ...args]).trim();
    return out ? (JSON.parse(out) as T[]) : [];
  }

  /** The device namespace as JSON: addresses, routes of every table, rules, links. */
  snapshot(): Record<string, unknown> {
    const links = this.ipJson<{ ifname: string; flags: string[]; mtu: number; operstate: string }>(this.dev, ['link', 'show'])
      .map((l) => ({ ifname: l.ifname, flags: l.flags, mtu: l.mtu, operstate: l.operstate }));
    return {
      links,
      addrs: this.ipJson(this.dev, ['addr', 'show']).map((a) => ({ ifname: a.ifname, addr_info: a.addr_info })),
      routes4: this.ipJson(this.dev, ['-4', 'route', 'show', 'table', 'all']),
      routes6: this.ipJson(this.dev, ['-6', 'route', 'show', 'table', 'all']),
      rules: this.ipJson(this.dev, ['rule', 'show']),
    };
  }

  /** A real Mosquitto on BROKER_IP:1883 in the router namespace (plain MQTT; the test is a TCP connect). */
  async startBroker(): Promise<void> {
    const dir = path.join(this.root, 'mosquitto');
    fs.mkdirSync(dir, { recursive: true });
    const conf = path.join(dir, 'mosquitto.conf');
    const logFile = path.join(dir, 'mosquitto.log');
    fs.writeFileSync(conf, [
      `listener ${BROKER_PORT} ${BROKER_IP}`, 'allow_anonymous true', 'persistence false', 'user root',
      `log_dest file ${logFile}`, 'log_type error', 'log_type warning', 'log_type notice', 'log_type information', '',
    ].join('\n'));
    const p = spawn('ip', ['netns', 'exec', this.router, '/usr/sbin/mosquitto', '-c', conf], { stdio: 'ignore' });
    procs.add(p);
    this.broker = p;
    for (const deadline = Date.now() + 10_000; ;) {
      if (fs.existsSync(logFile) && /running/.test(fs.readFileSync(logFile, 'utf8'))) break;
      if (p.exitCode !== null) throw new Error(`mosquitto exited: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''}`);
      if (Date.now() > deadline) throw new Error('mosquitto did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The provisioning file that points nim at the broker (keys need only be well-formed). */
  writeProvisioning(): void {
    fs.writeFileSync(path.join(this.dirs.config, 'controller.json'), JSON.stringify(testProvisioning(`mqtt://${BROKER_IP}:${BROKER_PORT}`, `nim-${this.id}`)));
  }

  /** busybox udhcpd on the router's end of a port; `fixed` maps MACs to addresses (no ARP probe, so leases are quick). */
  startDhcpServer(p: LabPort, fixed: Record<string, string> = {}): void {
    const dir = path.join(this.root, `udhcpd-${p.name}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'leases'), '');
    const net = `10.200.${p.net}`;
    fs.writeFileSync(path.join(dir, 'udhcpd.conf'), [
      `interface r${p.name}`, `start ${net}.100`, `end ${net}.150`, `lease_file ${dir}/leases`, `pidfile ${dir}/udhcpd.pid`,
      `opt router ${net}.1`, `opt dns ${net}.53`, 'opt subnet 255.255.255.0', 'opt lease 600', 'opt domain lab.test',
      ...Object.entries(fixed).map(([mac, ip]) => `static_lease ${mac} ${ip}`), '',
    ].join('\n'));
    const c = spawn('ip', ['netns', 'exec', this.router, 'busybox', 'udhcpd', '-f', path.join(dir, 'udhcpd.conf')], { stdio: 'ignore' });
    procs.add(c);
    this.others.push(c);
  }

  writeLocalFile(name: string, value: unknown): void {
    const dir = path.join(this.dirs.config, 'DevicePortConfig');
    fs.mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `.${name}.tmp`);
    fs.writeFileSync(tmp, typeof value === 'string' ? value : JSON.stringify(value));
    fs.renameSync(tmp, path.join(dir, name));
  }

  removeLocalFile(name: string): void {
    fs.rmSync(path.join(this.dirs.config, 'DevicePortConfig', name), { force: true });
  }

  /** nim alone, in the device namespace, from the sources (tsx). */
  startNim(env: Record<string, string> = {}): Proc {
    const args = ['netns', 'exec', this.dev, process.execPath, '--import', 'tsx', path.join(ROOT, 'zedbox/main.ts'), 'nim',
      '--run-dir', this.dirs.run, '--persist-dir', this.dirs.persist, '--config-dir', this.dirs.config];
    this.nim = start('ip', args, { ZEDBOX_RESOLV_CONF: this.resolvConf, ...env });
    procs.add(this.nim.child);
    return this.nim;
  }

  async stopNim(): Promise<void> {
    const n = this.nim;
    if (!n) return;
    this.nim = undefined;
    if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGTERM');
    const killer = setTimeout(() => n.child.kill('SIGKILL'), 10_000);
    const exit = await n.exited;
    clearTimeout(killer);
    this.pastLines.push(...n.lines, '--- nim stopped ---');
    procs.delete(n.child);
    if (exit.code !== 0) throw new Error(`nim exited with ${exit.code ?? exit.signal}; last lines:\n${n.lines.slice(-20).join('\n')}`);
  }

  /** zedagent's side: the port configuration and the config items. */
  private publishers() {
    this.zedagent ??= (async () => {
      const ep = await this.bus.endpoint('zedagent');
      return { dpc: ep.publication(DevicePortConfigCollection), items: ep.publication(ConfigItemValueMapCollection) };
    })();
    return this.zedagent;
  }

  async publishItems(items: Record<string, string>): Promise<void> {
    const p = await this.publishers();
    // Tests run on a 1 s test interval unless they say otherwise.
    p.items.publish('global', { items: { ...defaultConfigItems(), 'timer.port.testinterval': '1', ...items } });
  }

  async publishPorts(ports: NetworkPortConfig[] | undefined): Promise<void> {
    const p = await this.publishers();
    if (ports) p.dpc.publish('zedagent', { key: 'zedagent', ports });
    else if (p.dpc.get('zedagent')) p.dpc.unpublish('zedagent');
    p.dpc.signalRestarted();
  }

  watch<S extends TSchema>(spec: CollectionSpec<S>): Subscription<S> {
    let sub = this.subs.get(spec.type);
    if (!sub) this.subs.set(spec.type, (sub = this.bus.subscribe(spec as CollectionSpec, { agent: 'test' })));
    return sub as unknown as Subscription<S>;
  }

  async waitFor<S extends TSchema>(spec: CollectionSpec<S>, pred: (v: Readonly<Static<S>> | undefined) => boolean, what: string, timeoutMs = 30_000): Promise<Readonly<Static<S>>> {
    const sub = this.watch(spec);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = sub.get('global');
      if (pred(v)) return v!;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${spec.type}: ${JSON.stringify(v)}\nnim said:\n${this.nim?.lines.slice(-15).join('\n') ?? ''}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  status = (pred: (v: Readonly<Static<typeof DeviceNetworkStatusCollection.schema>>) => boolean, what: string, timeoutMs?: number) =>
    this.waitFor(DeviceNetworkStatusCollection, (v) => !!v && pred(v), what, timeoutMs);

  list = (pred: (v: Readonly<Static<typeof DevicePortConfigListCollection.schema>>) => boolean, what: string, timeoutMs?: number) =>
    this.waitFor(DevicePortConfigListCollection, (v) => !!v && pred(v), what, timeoutMs);

  /** Everything every nim run printed. */
  nimOutput(): string {
    return [...this.pastLines, ...(this.nim?.lines ?? [])].join('\n');
  }

  /** Prints nim's output when the test failed (its log says why). */
  explainOnFailure(t: { passing(): boolean; comment(...a: unknown[]): void }): void {
    if (!t.passing()) t.comment(`nim's output:\n${this.nimOutput()}`);
  }

  async cleanup(): Promise<void> {
    try {
      await this.stopNim().catch(() => {});
      for (const s of this.subs.values()) s.close();
      await this.bus.close();
    } finally {
      for (const c of [this.broker, ...this.others]) {
        if (c) {
          c.kill('SIGKILL');
          procs.delete(c);
        }
      }
      for (const ns of [this.dev, this.router]) {
        // Whatever still runs in our namespaces (a DHCP client a crashed nim left) goes with them.
        try {
          for (const pid of sh(['ip', 'netns', 'pids', ns]).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
        } catch { /* none, or the namespace was never made */ }
        try { sh(['ip', 'netns', 'del', ns]); } catch { /* not made */ }
        live.delete(ns);
      }
      fs.rmSync(this.root, { recursive: true, force: true });
    }
  }
}
