// Makes the host hold one port configuration, and records everything it adds in
// <run>/nim/applied.json (written before each addition), so that what it removes
// when a port or configuration goes away is exactly what it added: an address, a
// route or a rule the host already had is left alone, a default route it replaced
// is put back, a link it brought up is taken down again, the resolver file it
// rewrote gets its old text back. Reconciles run one at a time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomicSync } from '../../lib/atomic-file';
import type { Logger } from '../../lib/log';
import type { NetworkPortConfig } from '../../pubsub/collections/network';
import { addrKey, desiredState, routeKey, ruleKey, type AddrItem, type Desired } from './apply-plan';
import { readRaw, renderResolvConf, writeResolvConf } from './dns-driver';
import type { HostView } from './host-observer';
import { linkDriver, type LinkDriver, type RouteSpec, type RuleSpec } from './link-driver';
import type { LocalNetworks } from './local-networks';
import { DhcpClients, killStaleClient, leaseExpiresAt, type Lease } from './udhcpc-driver';

export interface AppliedRecord {
  /** Links nim changed: brought up (setUp), or whose MTU it changed (mtuBefore). */
  links: Record<string, { setUp?: boolean; mtuBefore?: number }>;
  addresses: AddrItem[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  /** The host's own default route nim replaced in the main table; put back when nim's goes. */
  replacedDefault?: RouteSpec;
  /** Running DHCP clients by port: their pids (a crashed nim's are killed at start). */
  dhcpClients: Record<string, number>;
  /** Leases held, so a restart of nim keeps their addresses while the clients start again. */
  leases: Record<string, Lease>;
  /** The resolver file's text before nim first wrote it (null: there was none). */
  resolv?: { original: string | null };
}

const emptyRecord = (): AppliedRecord => ({ links: {}, addresses: [], routes: [], rules: [], dhcpClients: {}, leases: {} });

export interface ApplierOptions {
  runDir: string;
  resolvConf: string;
  log: Logger;
  localNetworks: LocalNetworks;
  observe(): Promise<HostView>;
  /** Something changed on the host by nim's own doing (a lease came or went). */
  onChange(): void;
  driver?: LinkDriver;
}

export class Applier {
  /** Leases the DHCP clients hold (some may not be on the host yet). */
  private readonly leases = new Map<string, Lease>();
  /** Leases whose addresses and routes the last reconcile put on the host: what tests and the status go by. */
  applied: ReadonlyMap<string, Lease> = new Map();
  private record: AppliedRecord;
  private readonly file: string;
  private readonly hookFile: string;
  private readonly dhcp: DhcpClients;
  private readonly driver: LinkDriver;
  private ports: readonly NetworkPortConfig[] | undefined;
  private preferred: string | undefined;
  private queue: Promise<void> = Promise.resolve();
  /** Set first thing in stop(): no reconcile may start a DHCP client or server after nim stopped. */
  private stopped = false;
  private readonly upSinceMap = new Map<string, number>();
  /** Problems of the last reconcile, in plain words. */
  errors: string[] = [];

  constructor(private readonly opts: ApplierOptions) {
    this.file = path.join(opts.runDir, 'nim', 'applied.json');
    this.hookFile = path.join(opts.runDir, 'nim', 'udhcpc-hook.sh');
    this.driver = opts.driver ?? linkDriver;
    this.record = this.load();
    for (const [ifName, pid] of Object.entries(this.record.dhcpClients)) {
      if (killStaleClient(pid, this.hookFile)) opts.log.info('stopped a DHCP client a previous run left', { port: ifName, pid });
    }
    this.record.dhcpClients = {};
    for (const [ifName, lease] of Object.entries(this.record.leases)) if (leaseExpiresAt(lease) > Date.now()) this.leases.set(ifName, lease);
    this.dhcp = new DhcpClients({
      hookFile: this.hookFile,
      log: opts.log,
      onEvent: (ifName, event, lease) => {
        if (this.stopped) return; // a client's last word as stop() kills it
        if (lease) this.leases.set(ifName, lease);
        else this.leases.delete(ifName);
        opts.log.info(lease ? 'DHCP lease' : 'DHCP lease gone', { port: ifName, event, ...(lease ? { address: `${lease.ip}/${lease.prefix}`, router: lease.routers[0], dns: lease.dns } : {}) });
        void this.reconcile().then(() => opts.onChange());
      },
    });
  }

  /** Makes the host hold these ports (undefined: nothing of nim's), then resolves. */
  apply(ports: readonly NetworkPortConfig[] | undefined): Promise<void> {
    this.ports = ports;
    return this.reconcile();
  }

  /** The management port the last test reached the controller through: the main default route follows it. */
  setPreferred(ifName: string | undefined): Promise<void> {
    if (ifName === this.preferred) return this.queue;
    this.preferred = ifName;
    return this.reconcile();
  }

  /** Runs a reconcile after any in progress (host changes, lease events). */
  reconcile(): Promise<void> {
    if (this.stopped) return this.queue;
    this.queue = this.queue.then(() => this.reconcileNow()).catch((err: unknown) => {
      this.opts.log.error('applying the port configuration failed', { error: (err as Error).message });
      this.errors = [`applying the port configuration failed: ${(err as Error).message}`];
    });
    return this.queue;
  }

  /** When nim brought the link up (a carrier may take a few seconds after that). */
  upSince(ifName: string): number | undefined {
    return this.upSinceMap.get(ifName);
  }

  /** nim stops: clients are killed without a release (the addresses stay, as the leases do). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue;
    await this.dhcp.stopAll(false);
    await this.opts.localNetworks.stop();
    this.record.dhcpClients = {};
    this.save();
  }

  private load(): AppliedRecord {
    try {
      return { ...emptyRecord(), ...(JSON.parse(fs.readFileSync(this.file, 'utf8')) as Partial<AppliedRecord>) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.log.error('applied.json unreadable; starting with nothing recorded', { file: this.file, error: (err as Error).message });
      return emptyRecord();
    }
  }

  private save(): void {
    writeJsonAtomicSync(this.file, this.record);
  }

  private async reconcileNow(): Promise<void> {
    if (this.stopped) return; // queued before stop(), due after it
    const now = Date.now();
    for (const [ifName, l] of this.leases) if (leaseExpiresAt(l) <= now) this.leases.delete(ifName);
    const leases = new Map(this.leases);
    let view = await this.opts.observe();
    const want = desiredState(this.ports, leases, view.links, now, this.preferred);
    this.errors = [];
    // What was removed must not look like the host's own when additions are decided.
    if (await this.removeUnwanted(want)) view = await this.opts.observe();
    if (this.stopped) return; // stop() came meanwhile: remove, but start nothing
    await this.addWanted(want, view, now);
    for (const ifName of leases.keys()) if (!this.leases.has(ifName)) leases.delete(ifName); // released meanwhile
    this.applied = leases;
    this.record.leases = Object.fromEntries(this.leases);
    this.save();
    await this.opts.localNetworks.apply(want.localNetworks);
  }

  /** Runs one change; a failure is reported and the rest goes on. */
  private async attempt(what: string, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (err) {
      this.errors.push(`${what}: ${(err as Error).message}`);
      this.opts.log.warn(`cannot ${what}`, { error: (err as Error).message });
      return false;
    }
  }

  /** Removes what nim added that is not wanted any more; true when something was removed. */
  private async removeUnwanted(want: Desired): Promise<boolean> {
    const rec = this.record;
    const size = (): number => rec.rules.length + rec.routes.length + rec.addresses.length + Object.keys(rec.links).length + (rec.replacedDefault ? 1 : 0) + this.dhcp.running().length;
    const before = size();
    const rules = new Set(want.rules.map(ruleKey));
    const routes = new Set(want.routes.map(routeKey));
    const addrs = new Set(want.addresses.map(addrKey));
    for (const r of rec.rules.filter((x) => !rules.has(ruleKey(x)))) {
      if (await this.attempt(`remove rule from ${r.from}`, () => this.driver.ruleDel(r))) rec.rules = rec.rules.filter((x) => x !== r);
    }
    for (const r of rec.routes.filter((x) => !routes.has(routeKey(x)))) {
      if (await this.attempt(`remove route ${r.dst} via ${r.via ?? r.dev}`, () => this.driver.routeDel(r))) rec.routes = rec.routes.filter((x) => x !== r);
    }
    const old = rec.replacedDefault;
    if (old && !want.routes.some((r) => r.table === 'main' && r.dst === 'default')) {
      if (await this.attempt(`restore default route via ${old.via}`, () => this.driver.routeReplace(old))) delete rec.replacedDefault;
    }
    for (const a of rec.addresses.filter((x) => !addrs.has(addrKey(x)))) {
      if (await this.attempt(`remove ${a.cidr} from ${a.ifName}`, () => this.driver.addrDel(a.ifName, a.cidr))) rec.addresses = rec.addresses.filter((x) => x !== a);
    }
    for (const ifName of this.dhcp.running().filter((n) => !want.dhcpClients.includes(n))) {
      await this.dhcp.stop(ifName, true);
      this.leases.delete(ifName);
      delete rec.dhcpClients[ifName];
    }
    for (const [ifName, l] of Object.entries(rec.links)) {
      const still = want.links.find((x) => x.ifName === ifName);
      if (l.mtuBefore !== undefined && !still?.mtu) await this.attempt(`restore the MTU of ${ifName}`, () => this.driver.linkMtu(ifName, l.mtuBefore!));
      if (l.setUp && !still) {
        await this.attempt(`take ${ifName} down`, () => this.driver.linkDown(ifName));
        this.upSinceMap.delete(ifName);
      }
      if (!still) delete rec.links[ifName];
      else if (!still.mtu) delete l.mtuBefore;
    }
    this.save();
    return size() !== before;
  }

  /**
   * Adds what is wanted and not there. Everything about to be added is recorded first, in one
   * write (an intent log: after a crash the record holds at least what is on the host).
   */
  private async addWanted(want: Desired, view: HostView, now: number): Promise<void> {
    const rec = this.record;
    const ops: { what: string; run: () => Promise<unknown>; done?: () => void }[] = [];
    for (const w of want.links) {
      const link = view.links.find((l) => l.ifName === w.ifName)!;
      if (!link.adminUp) {
        rec.links[w.ifName] = { ...rec.links[w.ifName], setUp: true };
        ops.push({ what: `bring ${w.ifName} up`, run: () => this.driver.linkUp(w.ifName), done: () => this.upSinceMap.set(w.ifName, now) });
      }
      if (w.mtu && link.mtu !== w.mtu) {
        rec.links[w.ifName] = { mtuBefore: link.mtu, ...rec.links[w.ifName] };
        ops.push({ what: `set the MTU of ${w.ifName} to ${w.mtu}`, run: () => this.driver.linkMtu(w.ifName, w.mtu!) });
      }
    }
    for (const a of want.addresses) {
      if (view.addrs.some((x) => x.ifName === a.ifName && x.cidr === a.cidr)) continue; // there already (ours or the host's)
      if (!rec.addresses.some((x) => addrKey(x) === addrKey(a))) rec.addresses.push(a);
      ops.push({ what: `add ${a.cidr} to ${a.ifName}`, run: () => this.driver.addrReplace(a.ifName, a.cidr) });
    }
    const present = (r: RouteSpec): boolean => view.routes.some((x) => x.table === String(r.table) && x.dst === r.dst && x.gateway === r.via && x.dev === r.dev);
    for (const r of want.routes) {
      if (present(r)) continue; // there already: ours, or the host's own (left as it is)
      if (r.table === 'main' && r.dst === 'default' && !rec.replacedDefault) {
        // Replacing the host's own default route (same metric, 0): keep it to put back later.
        const host = view.routes.find((x) => x.table === 'main' && x.dst === 'default' && x.gateway && x.dev && !x.metric && !rec.routes.some((o) => o.table === 'main' && o.dst === 'default' && o.via === x.gateway && o.dev === x.dev));
        if (host) rec.replacedDefault = { table: 'main', dst: 'default', via: host.gateway!, dev: host.dev!, proto: host.protocol ?? 'boot' };
      }
      if (!rec.routes.some((x) => routeKey(x) === routeKey(r))) rec.routes.push(r);
      ops.push({ what: `add route ${r.dst} via ${r.via ?? r.dev}${r.table === 'main' ? '' : ` (table ${r.table})`}`, run: () => this.driver.routeReplace(r) });
    }
    for (const r of want.rules) {
      if (view.rules.some((x) => x.priority === r.priority && x.src === r.from && x.table === String(r.table))) continue;
      if (!rec.rules.some((x) => ruleKey(x) === ruleKey(r))) rec.rules.push(r);
      ops.push({ what: `add rule from ${r.from}`, run: () => this.driver.ruleAdd(r) });
    }
    if (ops.length) this.save();
    // In order: links, addresses, routes (connected before default), rules.
    for (const op of ops) if (await this.attempt(op.what, op.run)) op.done?.();
    for (const ifName of want.dhcpClients) {
      this.dhcp.ensure(ifName, this.leases.get(ifName)?.ip);
      const pid = this.dhcp.pid(ifName);
      if (pid) rec.dhcpClients[ifName] = pid;
    }
    this.applyDns(want);
  }

  private applyDns(want: Desired): void {
    const file = this.opts.resolvConf;
    try {
      if (want.dns) {
        if (!this.record.resolv) {
          this.record.resolv = { original: readRaw(file) };
          this.save();
        }
        writeResolvConf(file, renderResolvConf(want.dns.servers, want.dns.search));
      } else if (this.record.resolv) {
        writeResolvConf(file, this.record.resolv.original);
        delete this.record.resolv;
      }
    } catch (err) {
      this.errors.push(`cannot write ${file}: ${(err as Error).message}`);
    }
  }
}
