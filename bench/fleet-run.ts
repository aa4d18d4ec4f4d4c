// One fleet run: a real Mosquitto (TLS, dynamic security), the controller in its
// own process, the fleet (made directly, or onboarded for real), a C subscriber
// counting what the broker delivers, and simulator processes holding the devices.
// It measures and returns the figures; fleet.ts prints them. Every wait has a
// deadline, and close() stops whatever was started, whatever state the run is in.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connectDynsec } from '../controller/broker-dynsec';
import { newPassword } from '../controller/broker-accounts';
import type { ControllerCounters } from '../controller/server';
import { writeFileAtomicSync } from '../lib/atomic-file';
import { startMosquitto, type MosquittoInstance } from '../test/lib/mosquitto';
import { FleetChild, Observer, cpuSeconds, findPid, machineCpu, rssMb, type Msg, type ObserverCounts } from './fleet-procs';
import { createAccounts, makeFleet, onboardForReal, writeRegistry, type OnboardProbe } from './fleet-setup';
import type { SimDevice, SimStats } from './fleet-sim';
import { delaysFromEvents, percentiles, type Delays, type Percentiles } from './fleet-stats';

export interface FleetOptions {
  devices: number;
  seconds: number;
  metricsS: number;
  infoS: number;
  sims: number;
  /** Devices onboarded for real beside the fleet (a probe), or 'all': the whole fleet onboards. */
  onboard: number | 'all';
  connectConcurrency: number;
  onboardConcurrency: number;
  accountConcurrency: number;
  sampleMs: number;
  /** Write a CPU profile of the controller here (node --cpu-prof). */
  profDir?: string;
  progress(text: string): void;
}

export interface Snapshot {
  wall: number;
  cpu: { controller: number; broker: number; sims: number; observer: number };
  machine: { busy: number; total: number };
  counters: ControllerCounters;
  /** The controller's event loop: ms in use and idle since it started. */
  loop: { active: number; idle: number };
  /** Its log lines so far, counted (fleet-controller.ts). */
  log: ControllerLog;
  sim: SimStats;
  observer: ObserverCounts & { total: number };
}

export interface ControllerLog { warn: number; error: number; reconnects: number; lastWarning: string }

export interface LagSample { s: number; sent: number; received: number; lag: number }

export interface FleetResult {
  setup: { mode: 'direct' | 'onboarded'; keysMs?: number; registryMs?: number; accountsMs?: number; accountsBrokerCpuS?: number; controllerStartMs: number };
  onboard?: OnboardProbe & { controllerCpuS: number; brokerCpuS: number };
  connect: { ok: number; failed: number; errors: string[]; ms: number; statusesMs: number; controllerCpuS: number };
  s0: Snapshot;
  s1: Snapshot;
  samples: LagSample[];
  drain: { ms: number; end: Snapshot };
  delays: Delays;
  controllerRss: { now: number; peak: number };
  brokerRss: { now: number; peak: number };
  /** What one durable write (lib/atomic-file.ts) costs on the state dir's disk, before and after the window. */
  atomicWriteMs: { before?: Percentiles; after?: Percentiles };
}

/** `n` atomic writes of an info-sized file in `dir`: the disk's answer time, which the controller waits for per info. */
function probeAtomicWrites(dir: string, n = 50): Percentiles | undefined {
  fs.mkdirSync(dir, { recursive: true });
  const text = 'x'.repeat(800);
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    writeFileAtomicSync(path.join(dir, `probe-${i % 10}.json`), text);
    ms.push(performance.now() - t);
  }
  return percentiles(ms);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const totalSent = (s: SimStats): number => s.sent.status + s.sent.info + s.sent.metrics;

export class FleetRun {
  private mosq?: MosquittoInstance;
  private controller?: FleetChild;
  private sims: FleetChild[] = [];
  private observer?: Observer;
  private brokerPid = 0;
  private readonly dirs: string[] = [];
  private stateDir = '';

  constructor(private readonly o: FleetOptions) {}

  async run(): Promise<FleetResult> {
    const o = this.o;
    o.progress('starting Mosquitto');
    const mosq = (this.mosq = await startMosquitto({ name: 'fleet' }));
    this.brokerPid = findPid(path.join(mosq.dir, 'mosquitto.conf')) ?? 0;
    this.stateDir = this.tempDir('zb-fleet-state-');
    const workDir = this.tempDir('zb-fleet-work-');

    const setup: FleetResult['setup'] = { mode: o.onboard === 'all' ? 'onboarded' : 'direct', controllerStartMs: 0 };
    let fleet = await this.prepareBroker(mosq, setup);

    o.progress('starting the controller');
    const prof = o.profDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profDir}`] : [];
    const controller = (this.controller = new FleetChild('controller', 'fleet-controller.ts', [], { nodeArgs: prof, stdout: 'ignore' }));
    const ready = await controller.ask<Msg & { ms: number; error?: string }>(
      { type: 'start', stateDir: this.stateDir, brokerUrl: mosq.url, caPem: mosq.caPem, dynsecAdmin: mosq.admin }, ['ready', 'failed'], 60_000);
    if (ready.type === 'failed') throw new Error(`the controller did not start: ${ready.error}`);
    setup.controllerStartMs = ready.ms;

    let onboard: FleetResult['onboard'];
    const probeSize = o.onboard === 'all' ? o.devices : o.onboard;
    if (probeSize > 0) {
      o.progress(`onboarding ${probeSize} devices for real`);
      const cpu0 = cpuSeconds(controller.pid);
      const brokerCpu0 = cpuSeconds(this.brokerPid);
      const probe = await onboardForReal(this.stateDir, workDir, probeSize, o.onboardConcurrency, o.onboard === 'all' ? 0 : o.devices);
      onboard = { ...probe, controllerCpuS: cpuSeconds(controller.pid) - cpu0, brokerCpuS: cpuSeconds(this.brokerPid) - brokerCpu0 };
      if (o.onboard === 'all') fleet = probe.devices;
    }
    if (fleet.length === 0) throw new Error('no device to simulate');

    const connect = await this.connectFleet(fleet, mosq);
    const before = probeAtomicWrites(path.join(workDir, 'disk-probe'));
    o.progress(`${connect.ok} devices online; sending for ${o.seconds} s`);
    const s0 = await this.snapshot();
    for (const sim of this.sims) sim.send({ type: 'go', metricsS: o.metricsS, infoS: o.infoS, seconds: o.seconds, fleetSize: fleet.length });
    const samples = await this.sample(s0);
    await Promise.all(this.sims.map((s) => s.next('stopped', 30_000)));
    const s1 = await this.snapshot();
    const controllerRss = rssMb(controller.pid);
    const brokerRss = rssMb(this.brokerPid);

    o.progress('draining');
    const drain = await this.drain();
    const delays = delaysFromEvents(this.stateDir, s0.wall, s1.wall);
    const atomicWriteMs = { before, after: probeAtomicWrites(path.join(workDir, 'disk-probe')) };
    return { setup, ...(onboard ? { onboard } : {}), connect, s0, s1, samples, drain, delays, controllerRss, brokerRss, atomicWriteMs };
  }

  /** The fleet made directly (unless it is to onboard for real), its broker accounts, and the C subscriber. */
  private async prepareBroker(mosq: MosquittoInstance, setup: FleetResult['setup']): Promise<SimDevice[]> {
    const o = this.o;
    let fleet: SimDevice[] = [];
    const dynsec = await connectDynsec({ url: mosq.url, caPem: mosq.caPem, ...mosq.admin });
    try {
      if (o.onboard !== 'all') {
        o.progress(`making ${o.devices} devices: keys, registry records, broker accounts`);
        let t = performance.now();
        fleet = makeFleet(o.devices);
        setup.keysMs = performance.now() - t;
        t = performance.now();
        writeRegistry(this.stateDir, fleet);
        setup.registryMs = performance.now() - t;
        t = performance.now();
        const brokerCpu = cpuSeconds(this.brokerPid);
        await createAccounts(dynsec, fleet, o.accountConcurrency);
        setup.accountsMs = performance.now() - t;
        setup.accountsBrokerCpuS = cpuSeconds(this.brokerPid) - brokerCpu;
      }
      // The C subscriber gets a controller-role account of its own: it reads every device's "up".
      const observer = { username: 'bench-observer', password: newPassword() };
      await dynsec.upsert(observer.username, observer.password, { kind: 'controller' });
      this.observer = new Observer({ port: mosq.port, caFile: mosq.caFile, ...observer });
    } finally {
      await dynsec.close();
    }
    return fleet;
  }

  /** Starts the simulators with their slices, waits for every device, then for the controller to take their online statuses. */
  private async connectFleet(fleet: SimDevice[], mosq: MosquittoInstance): Promise<FleetResult['connect']> {
    const o = this.o;
    const n = Math.max(1, Math.min(o.sims, fleet.length));
    o.progress(`connecting ${fleet.length} devices from ${n} simulator processes`);
    const cpu0 = cpuSeconds(this.controller!.pid);
    const t0 = performance.now();
    this.sims = Array.from({ length: n }, (_, i) => new FleetChild(`sim-${i}`, 'fleet-sim.ts', [], { stdout: 'ignore' }));
    this.sims.forEach((sim, i) => sim.send({
      type: 'start', url: mosq.url, caPem: mosq.caPem, concurrency: Math.ceil(o.connectConcurrency / n),
      devices: fleet.filter((_, j) => j % n === i),
    }));
    const answers = await Promise.all(this.sims.map((s) => s.next<Msg & { ok: number; failed: number; errors: string[] }>('connected', 300_000)));
    const ms = performance.now() - t0;
    const ok = answers.reduce((a, r) => a + r.ok, 0);
    // The online statuses go through ingest like everything else; the window starts once they are in.
    const tReady = performance.now();
    const deadline = Date.now() + 120_000;
    for (;;) {
      const sent = totalSent(await this.simStats());
      if ((await this.counters()).ingest.received >= sent || Date.now() > deadline) break;
      await sleep(250);
    }
    return {
      ok, failed: answers.reduce((a, r) => a + r.failed, 0), errors: answers.flatMap((r) => r.errors), ms,
      statusesMs: performance.now() - tReady, controllerCpuS: cpuSeconds(this.controller!.pid) - cpu0,
    };
  }

  /** Every sampleMs while the fleet sends: what was sent against what the controller received. */
  private async sample(s0: Snapshot): Promise<LagSample[]> {
    const samples: LagSample[] = [];
    const end = s0.wall + this.o.seconds * 1000;
    while (Date.now() + this.o.sampleMs <= end + 500) {
      await sleep(this.o.sampleMs - ((Date.now() - s0.wall) % this.o.sampleMs));
      // The controller first: a busy one answers late, having received more meanwhile, and asking the
      // simulators after it keeps "sent" from being counted earlier than "received" (no negative lag).
      const counters = await this.counters();
      const sim = await this.simStats();
      const sent = totalSent(sim) - totalSent(s0.sim);
      const received = counters.ingest.received - s0.counters.ingest.received;
      samples.push({ s: (Date.now() - s0.wall) / 1000, sent, received, lag: sent - received });
    }
    return samples;
  }

  /** After the fleet stops: until the controller has received all that was sent, or nothing moves for 5 s (60 s at most). */
  private async drain(): Promise<FleetResult['drain']> {
    const t0 = performance.now();
    const sent = totalSent(await this.simStats());
    const deadline = Date.now() + 60_000;
    let last = -1;
    let still = Date.now();
    for (;;) {
      const received = (await this.counters()).ingest.received;
      if (received >= sent || Date.now() > deadline || Date.now() - still > 5000) break;
      if (received !== last) {
        last = received;
        still = Date.now();
      }
      await sleep(200);
    }
    const ms = performance.now() - t0;
    return { ms, end: await this.snapshot() };
  }

  private async simStats(): Promise<SimStats> {
    const all = await Promise.all(this.sims.map((s) => s.ask<Msg & { stats: SimStats }>({ type: 'stats' }, 'stats', 10_000)));
    const sum = (pick: (s: SimStats) => number): number => all.reduce((a, r) => a + pick(r.stats), 0);
    return {
      sent: { status: sum((s) => s.sent.status), info: sum((s) => s.sent.info), metrics: sum((s) => s.sent.metrics) },
      acked: { status: sum((s) => s.acked.status), info: sum((s) => s.acked.info) },
      bytes: { status: sum((s) => s.bytes.status), info: sum((s) => s.bytes.info), metrics: sum((s) => s.bytes.metrics) },
      skipped: sum((s) => s.skipped), publishErrors: sum((s) => s.publishErrors),
      connected: sum((s) => s.connected), reconnects: sum((s) => s.reconnects),
    };
  }

  private async counters(): Promise<ControllerCounters> {
    return (await this.controllerState()).counters;
  }

  private controllerState(): Promise<Msg & { counters: ControllerCounters; loop: Snapshot['loop']; log: ControllerLog }> {
    return this.controller!.ask({ type: 'counters' }, 'counters', 10_000);
  }

  private async snapshot(): Promise<Snapshot> {
    const { counters, loop, log } = await this.controllerState(); // first, as in sample()
    const sim = await this.simStats();
    const obs = this.observer!;
    return {
      wall: Date.now(),
      cpu: {
        controller: cpuSeconds(this.controller!.pid),
        broker: cpuSeconds(this.brokerPid),
        sims: this.sims.reduce((a, s) => a + cpuSeconds(s.pid), 0),
        observer: cpuSeconds(obs.pid),
      },
      machine: machineCpu(),
      counters,
      loop,
      log,
      sim,
      observer: { ...obs.counts, total: obs.total },
    };
  }

  /** The controller's counters at the very end (for the report), or undefined if it is gone. */
  async finalCounters(): Promise<ControllerCounters | undefined> {
    return this.controller ? this.counters().catch(() => undefined) : undefined;
  }

  /** Stops everything this run started, in the order that sends no surprise traffic: devices, controller, observer, broker. */
  async close(): Promise<string[]> {
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown> | undefined): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${(err as Error).message}`);
      }
    };
    await step('simulators', () => Promise.all(this.sims.map((s) => s.stop())));
    await step('controller', () => this.controller?.stop(20_000));
    await step('observer', () => this.observer?.stop());
    await step('mosquitto', () => this.mosq?.cleanup());
    for (const dir of this.dirs) fs.rmSync(dir, { recursive: true, force: true });
    return problems;
  }

  private tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }
}
