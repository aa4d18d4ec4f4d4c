// nim's loop: feeds the sources into the state machine (dpc-manager.ts), performs
// the steps it returns with the applier and the tester, and publishes the list and
// the device's network status. One pass at a time; a timer wakes it when the
// state machine has something due.
import { readProvisioning } from '../../api/provisioning';
import { CoalescedRunner } from '../../lib/coalesced-runner';
import { configItem } from '../../pubsub/collections/config-items';
import { ConfigItemValueMapCollection } from '../../pubsub/collections/config';
import {
  DeviceNetworkStatusCollection, DevicePortConfigCollection, DevicePortConfigListCollection,
  type DeviceNetworkStatusSchema, type DevicePortConfigListSchema, type NetworkPortConfig,
} from '../../pubsub/collections/network';
import type { Publication } from '../../pubsub/publication';
import { untilAborted, type AgentContext } from '../agent';
import { Applier } from './applier';
import { brokerTarget, testConfig, testHost, type BrokerTarget, type TestResult } from './conn-tester';
import { entryId, type Sources } from './dpc-list';
import { DpcManager, HOST, type NimTimers, type Step } from './dpc-manager';
import { lastResortPorts, localSignature, readLocalConfigs } from './dpc-sources';
import { observeHost, watchHost, type HostView } from './host-observer';
import { NO_LOCAL_NETWORKS, type LocalNetworks } from './local-networks';
import { buildStatus, dropStaleResults } from './status-build';

/** How often the local configuration directory is looked at for changes. */
const LOCAL_POLL_MS = 1000;
/** How long a stop waits for a pass in progress. */
const STOP_WAIT_MS = 1000;

export interface NimOptions {
  /** The resolver file nim writes in configuration mode (ZEDBOX_RESOLV_CONF or /etc/resolv.conf). */
  resolvConf: string;
  /** DHCP service on local-network ports (see local-networks.ts). */
  localNetworks?: LocalNetworks;
}

export interface NimTimerValues extends NimTimers {
  timeoutMs: number;
}

/** The timers from the config items. */
export function nimTimers(items: Readonly<Record<string, string>> | undefined): NimTimerValues {
  return {
    testIntervalMs: configItem(items, 'timer.port.testinterval') * 1000,
    testBetterIntervalMs: configItem(items, 'timer.port.testbetterinterval') * 1000,
    timeoutMs: configItem(items, 'timer.port.timeout') * 1000,
  };
}

export class NimAgent {
  private readonly listPub: Publication<typeof DevicePortConfigListSchema>;
  private readonly statusPub: Publication<typeof DeviceNetworkStatusSchema>;
  private readonly applier: Applier;
  private readonly manager: DpcManager;
  private readonly runner: CoalescedRunner;
  private readonly statusRunner: CoalescedRunner;
  private readonly sources: Sources = {};
  private sourcesDirty = true;
  private items: Readonly<Record<string, string>> | undefined;
  private timers: NimTimerValues;
  private fileErrors: string[] = [];
  private localSig = '';
  private wake: NodeJS.Timeout | undefined;
  /** The last test of each configuration (and of the host), for the status. */
  private readonly results = new Map<string, TestResult>();
  private readonly localNetworks: LocalNetworks;

  constructor(private readonly ctx: AgentContext, private readonly opts: NimOptions) {
    this.localNetworks = opts.localNetworks ?? NO_LOCAL_NETWORKS;
    this.listPub = ctx.publish(DevicePortConfigListCollection);
    this.statusPub = ctx.publish(DeviceNetworkStatusCollection);
    this.timers = nimTimers(undefined);
    const onError = (what: string) => (err: unknown): 'continue' => {
      ctx.log.error(`${what} failed`, { error: (err as Error).stack ?? String(err) });
      return 'continue';
    };
    this.runner = new CoalescedRunner(() => this.pass(), { signal: ctx.signal, onError: onError('nim pass') });
    this.statusRunner = new CoalescedRunner(() => this.publishStatus(), { signal: ctx.signal, onError: onError('status') });
    this.applier = new Applier({
      runDir: ctx.dirs.run, resolvConf: opts.resolvConf, log: ctx.log, localNetworks: this.localNetworks,
      observe: () => this.observe(),
      onChange: () => this.statusRunner.trigger(),
    });
    this.manager = new DpcManager(this.listPub.get('global'), this.timers, Date.now());
    this.readLocal();
  }

  async run(): Promise<void> {
    const { ctx } = this;
    const dpcs = ctx.subscribe(DevicePortConfigCollection, {
      create: (_k, v) => this.setZedagent(v.ports),
      modify: (_k, v) => this.setZedagent(v.ports),
      delete: () => this.setZedagent(null),
      synchronized: () => { if (!dpcs.get('zedagent')) this.setZedagent(null); },
    });
    const items = ctx.subscribe(ConfigItemValueMapCollection, {
      create: (_k, v) => this.setItems(v.items),
      modify: (_k, v) => this.setItems(v.items),
      delete: () => this.setItems(undefined),
      synchronized: () => { if (!items.get('global')) this.setItems(undefined); },
    });
    ctx.setInterval(() => this.readLocal(), LOCAL_POLL_MS);
    const stopWatch = watchHost(() => this.hostChanged(), (err) => ctx.log.warn('cannot watch the host\'s links (ip monitor)', { error: err.message }));
    this.runner.trigger();
    await untilAborted(ctx.signal);
    stopWatch();
    // A pass may be in a connectivity test (up to timer.port.timeout, 15 s): the stop does not wait
    // for it past a second. The applier refuses anything once stopped, so a late pass changes nothing.
    const settled = (p: Promise<void>): Promise<void> => Promise.race([p, new Promise<void>((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
    await settled(this.runner.idle());
    await settled(this.statusRunner.idle());
    await this.applier.stop();
  }

  /** Something the status shows changed outside nim's loop (a DHCP server started on a retry). */
  statusChanged(): void {
    this.statusRunner.trigger();
  }

  private setZedagent(ports: readonly NetworkPortConfig[] | null): void {
    this.sources.zedagent = ports ? structuredClone(ports) as NetworkPortConfig[] : null;
    this.sourcesDirty = true;
    this.runner.trigger();
  }

  private setItems(items: Readonly<Record<string, string>> | undefined): void {
    this.items = items ?? {};
    this.timers = nimTimers(this.items);
    this.sourcesDirty = true; // network.fallback.any.eth may have changed
    this.runner.trigger();
  }

  private readLocal(): void {
    const sig = localSignature(this.ctx.dirs.config);
    if (sig === this.localSig && this.sources.local !== undefined) return;
    this.localSig = sig;
    const { configs, errors } = readLocalConfigs(this.ctx.dirs.config);
    for (const e of errors) if (!this.fileErrors.includes(e)) this.ctx.log.error('bad local port configuration, ignored', { error: e });
    this.fileErrors = errors;
    this.sources.local = configs.map((c) => c.ports);
    this.sourcesDirty = true;
    this.runner.trigger();
  }

  private hostChanged(): void {
    if (this.items && configItem(this.items, 'network.fallback.any.eth')) this.sourcesDirty = true; // a new ethernet port
    if (this.manager.applied !== HOST) void this.applier.reconcile(); // a port of the configuration may have appeared
    this.runner.trigger();
    this.statusRunner.trigger();
  }

  private observe(): Promise<HostView> {
    return observeHost(this.opts.resolvConf);
  }

  private async pass(): Promise<void> {
    const now = Date.now();
    const steps: Step[] = [];
    if (this.sourcesDirty) {
      this.sourcesDirty = false;
      await this.updateLastResort();
      steps.push(...this.manager.setSources(this.sources, now));
    }
    steps.push(...this.manager.setTimers(this.timers, now));
    try {
      while (steps.length) {
        const step = steps.shift()!;
        steps.push(...await this.perform(step));
        this.listPub.publish('global', this.manager.list);
        this.statusRunner.trigger();
      }
    } finally {
      dropStaleResults(this.results, this.manager.list, HOST);
      this.listPub.publish('global', this.manager.list);
      this.statusRunner.trigger();
      this.schedule();
    }
  }

  private async updateLastResort(): Promise<void> {
    if (this.items === undefined) return; // not known yet: the list keeps what it had
    if (!configItem(this.items, 'network.fallback.any.eth')) {
      this.sources.lastresort = null;
      return;
    }
    // A fresh look: the change that made the sources dirty (a new port) may be newer than any view held.
    this.sources.lastresort = lastResortPorts((await this.observe()).links);
  }

  private schedule(): void {
    if (this.wake) clearTimeout(this.wake);
    const at = this.manager.nextWakeAt();
    if (at === undefined || this.ctx.signal.aborted) return;
    this.wake = this.ctx.setTimeout(() => this.runner.trigger(), Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)));
  }

  private async perform(step: Step): Promise<Step[]> {
    const log = this.ctx.log;
    switch (step.kind) {
      case 'host':
        log.info('no port configuration: leaving the host\'s network as it is');
        await this.applier.apply(undefined);
        return [];
      case 'test-host': {
        const r = await this.failSafe(async () => testHost(await this.observe(), this.target(), this.timers.timeoutMs, Date.now()));
        this.results.set(HOST, r);
        return this.manager.tested(HOST, r.outcome, Date.now());
      }
      case 'apply':
        log.info('applying port configuration', { dpc: step.id, reason: step.reason });
        await this.applier.apply(step.entry.ports);
        return [];
      case 'verify': {
        log.debug('testing port configuration', { dpc: step.id, why: step.why });
        this.results.delete(step.id); // an old result must not speak for this test
        const r = await this.failSafe(async () => {
          await this.applier.apply(step.entry.ports);
          return testConfig({
            ports: step.entry.ports, view: await this.observe(), leases: this.applier.applied, upSince: (n) => this.applier.upSince(n),
            target: this.target(), timeoutMs: this.timers.timeoutMs, now: Date.now(),
          });
        });
        if (r.via) await this.applier.setPreferred(r.via);
        // The result and the state machine's answer together: a status in between would contradict itself.
        this.results.set(step.id, r);
        const before = this.manager.list.currentIndex;
        const next = this.manager.tested(step.id, r.outcome, Date.now());
        this.logResult(step, r, before);
        return next;
      }
    }
  }

  /** A test that could not run (ip failed, say) is a failed test: the state machine must hear back either way. */
  private async failSafe(test: () => Promise<TestResult>): Promise<TestResult> {
    try {
      return await test();
    } catch (err) {
      this.ctx.log.error('cannot apply or test a port configuration', { error: (err as Error).message });
      return { outcome: { state: 'fail', error: `cannot apply or test: ${(err as Error).message}` }, ports: [] };
    }
  }

  private logResult(step: Extract<Step, { kind: 'verify' }>, r: TestResult, before: number): void {
    const list = this.manager.list;
    const cur = list.list[list.currentIndex];
    const fields = { dpc: step.id, why: step.why, state: r.outcome.state, ...(r.via ? { via: r.via } : {}), ...(r.outcome.error ? { error: r.outcome.error } : {}) };
    if (r.outcome.state === 'success' || r.outcome.state === 'remote-wait') {
      if (list.currentIndex !== before) this.ctx.log.info(`using port configuration ${step.id} (index ${list.currentIndex})`, fields);
    } else if (r.outcome.state === 'ipdns-wait' || r.outcome.state === 'intf-wait') {
      this.ctx.log.debug('port configuration waits', fields);
    } else {
      this.ctx.log.warn(`port configuration ${step.id} failed its test`, { ...fields, current: cur && entryId(cur) });
    }
  }

  private target(): BrokerTarget | undefined {
    try {
      return brokerTarget(readProvisioning(this.ctx.dirs));
    } catch {
      return undefined; // reported in the status (provisionError)
    }
  }

  private provisionError(): string | undefined {
    try {
      readProvisioning(this.ctx.dirs);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  private async publishStatus(): Promise<void> {
    const view = await this.observe();
    const applied = this.manager.applied;
    const entry = applied && applied !== HOST ? this.manager.list.list.find((e) => entryId(e) === applied) : undefined;
    const prov = this.provisionError();
    const status = buildStatus({
      list: this.manager.list,
      applied: entry,
      state: this.manager.state,
      testing: this.manager.testing,
      view,
      leases: this.applier.applied,
      test: this.results.get(entry ? entryId(entry) : HOST),
      errors: [...this.fileErrors, ...this.applier.errors, ...(prov ? [prov] : [])],
      localNetwork: (n) => this.localNetworks.status(n),
    });
    if (!this.ctx.signal.aborted) this.statusPub.publish('global', status);
  }
}
