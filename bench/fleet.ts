// Section 6, the fleet: ed25519 in tweetnacl against Node's crypto, then one
// controller (its own process) and a fleet of simulated devices (real mqtt.js
// clients in simulator processes) through a real Mosquitto, with what the broker
// itself delivers for the same traffic (a mosquitto_sub) as the baseline. The
// controller's CPU, memory, accepted rate and lag are what is measured.
// Env: BENCH_FLEET_DEVICES (1000), BENCH_FLEET_SECONDS (60) of sending,
// BENCH_FLEET_METRICS_S (10) and BENCH_FLEET_INFO_S (10): each device's metrics
// interval and one app info change per interval (a real device: metrics every
// 60 s, info on change), BENCH_FLEET_SIMS (2) simulator processes,
// BENCH_FLEET_ONBOARD (50) devices onboarded for real as a probe, or "all" to
// onboard the whole fleet for real instead of writing its records directly,
// BENCH_FLEET_CONNECT_CONCURRENCY (50) TLS handshakes in flight,
// BENCH_FLEET_PROF=<dir> writes a CPU profile of the controller (--cpu-prof),
// BENCH_FLEET_SIGN_MS (1000) per signing figure, BENCH_FLEET_TIMEOUT_S (watchdog,
// default 600 + the sending time), BENCH_FLEET_WHATIF=no-fsync (an experiment, not
// a configuration: fsync becomes a no-op in the controller process, to show what
// its durable writes cost). Run alone: node --import tsx bench/main.ts fleet
import * as os from 'node:os';
import { benchSigning } from './fleet-sign';
import { FleetRun, type FleetOptions, type FleetResult, type Snapshot } from './fleet-run';
import { percentiles, slope, type Percentiles } from './fleet-stats';

const num = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a non-negative number, not ${process.env[name]}`);
  return v;
};
const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const pct = (x: number): string => `${fmt(x * 100, 1)}%`;

/**
 * Kept up: the lag did not trend up (by more than 1% of the offered rate), everything sent arrived,
 * nothing was rejected, and 99% of info reached the controller within this (a backlog shows as delay).
 */
const KEPT_UP_P99_MS = 1000;

function options(): FleetOptions {
  const onboard = process.env.BENCH_FLEET_ONBOARD === 'all' ? 'all' : num('BENCH_FLEET_ONBOARD', 50);
  return {
    devices: Math.max(1, num('BENCH_FLEET_DEVICES', 1000)),
    seconds: Math.max(5, num('BENCH_FLEET_SECONDS', 60)),
    metricsS: Math.max(0.1, num('BENCH_FLEET_METRICS_S', 10)),
    infoS: Math.max(0.1, num('BENCH_FLEET_INFO_S', 10)),
    sims: Math.max(1, num('BENCH_FLEET_SIMS', 2)),
    onboard,
    connectConcurrency: Math.max(1, num('BENCH_FLEET_CONNECT_CONCURRENCY', 50)),
    onboardConcurrency: 50,
    accountConcurrency: 16,
    sampleMs: 5000,
    ...(process.env.BENCH_FLEET_PROF ? { profDir: process.env.BENCH_FLEET_PROF } : {}),
    progress: (text) => process.stderr.write(`   [fleet] ${text}\n`),
  };
}

export async function benchFleet(): Promise<string[]> {
  const lines = ['-- ed25519 signing and verifying', ...benchSigning(), '-- the fleet'];
  const o = options();
  const timeoutS = num('BENCH_FLEET_TIMEOUT_S', 600 + o.seconds);
  const run = new FleetRun(o);
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`WATCHDOG: the fleet run took over ${timeoutS} s; stopped`)), timeoutS * 1000);
  });
  try {
    const running = run.run();
    running.catch(() => undefined); // after a watchdog stop it fails as its processes go; nobody waits for it then
    const result = await Promise.race([running, watchdog]);
    lines.push(...report(o, result));
    const final = await run.finalCounters();
    if (final) lines.push(`controller counters at the end: ${JSON.stringify(final)}`);
  } catch (err) {
    lines.push(`ERROR: ${(err as Error).message.split('\n').slice(0, 8).join(' | ')}`);
    lines.push(`=> fleet ${o.devices} devices: FAILED (${(err as Error).message.split('\n')[0]})`);
  } finally {
    clearTimeout(timer);
    for (const p of await run.close()) lines.push(`cleanup: ${p}`);
  }
  return lines;
}

const delayText = (p: Percentiles | undefined): string =>
  p ? `p50 ${fmt(p.p50)} ms p99 ${fmt(p.p99)} ms max ${fmt(p.max)} ms (${fmt(p.count)})` : 'no samples';

function cpuShare(a: Snapshot, b: Snapshot, pick: (s: Snapshot) => number): number {
  return (pick(b) - pick(a)) / ((b.wall - a.wall) / 1000);
}

function report(o: FleetOptions, r: FleetResult): string[] {
  const out: string[] = [];
  const whatIf = process.env.BENCH_FLEET_WHATIF === 'no-fsync' ? ' [WHAT-IF: no fsync in the controller]' : '';
  if (whatIf) out.push('WHAT-IF: fsync is a no-op in the controller process; these figures are not of a real configuration');
  const { s0, s1 } = r;
  const n = r.connect.ok;
  const secs = (s1.wall - s0.wall) / 1000;

  if (r.setup.mode === 'direct') {
    out.push(
      `setup (direct): ${fmt(o.devices)} ed25519 key pairs ${fmt(r.setup.keysMs ?? 0)} ms, registry records ${fmt(r.setup.registryMs ?? 0)} ms,` +
        ` broker accounts through dynsec ${fmt((r.setup.accountsMs ?? 0) / 1000, 1)} s (${fmt(o.devices / ((r.setup.accountsMs ?? 1) / 1000))}/s,` +
        ` mosquitto CPU ${fmt(r.setup.accountsBrokerCpuS ?? 0, 1)} s);` +
        ` controller up in ${fmt(r.setup.controllerStartMs)} ms`,
    );
  }
  if (r.onboard) {
    const ob = r.onboard;
    const each = percentiles(ob.eachMs);
    const rate = ob.ok / (ob.ms / 1000);
    out.push(
      `onboarding for real (zedctl device add + zedagent onboard(), ${Math.min(o.onboardConcurrency, ob.ok + ob.failed.length)} at a time): ${ob.ok} devices in ${fmt(ob.ms / 1000, 1)} s` +
        ` = ${fmt(rate, 1)}/s; each p50 ${fmt(each?.p50 ?? 0)} ms p99 ${fmt(each?.p99 ?? 0)} ms; controller CPU ${fmt(ob.controllerCpuS, 1)} s` +
        ` (${fmt((ob.controllerCpuS * 1000) / Math.max(1, ob.ok), 1)} ms a device), mosquitto CPU ${fmt(ob.brokerCpuS, 1)} s` +
        (r.setup.mode === 'direct' ? `; ${fmt(o.devices)} would take ~${fmt(o.devices / Math.max(rate, 1e-9))} s` : '') +
        (ob.failed.length ? `; FAILED ${ob.failed.length}: ${ob.failed.slice(0, 3).join('; ')}` : ''),
    );
  }
  const c = r.connect;
  out.push(
    `connected ${fmt(n)}/${fmt(n + c.failed)} devices in ${fmt(c.ms / 1000, 1)} s (${fmt(n / (c.ms / 1000))}/s, TLS, clean:false, own account each);` +
      ` their online statuses in the controller ${fmt(c.statusesMs / 1000, 1)} s later; controller CPU meanwhile ${fmt(c.controllerCpuS, 1)} s` +
      (c.failed ? `; FAILED ${c.failed}: ${c.errors.slice(0, 3).join('; ')}` : ''),
  );

  const sentInfo = s1.sim.sent.info - s0.sim.sent.info;
  const sentMetrics = s1.sim.sent.metrics - s0.sim.sent.metrics;
  const offered = (sentInfo + sentMetrics) / secs;
  const accepted = (s1.counters.ingest.accepted - s0.counters.ingest.accepted) / secs;
  const broker = (s1.observer.total - s0.observer.total) / secs;
  const avg = (kind: 'info' | 'metrics'): number => (s1.sim.bytes[kind] - s0.sim.bytes[kind]) / Math.max(1, kind === 'info' ? sentInfo : sentMetrics);
  out.push(
    `window ${fmt(secs, 1)} s: offered ${fmt(offered, 1)} msg/s (info ${fmt(sentInfo / secs, 1)}/s QoS 1 retained, avg ${fmt(avg('info'))} B;` +
      ` metrics ${fmt(sentMetrics / secs, 1)}/s QoS 0, avg ${fmt(avg('metrics'))} B)`,
  );
  out.push(
    `broker delivered to mosquitto_sub ${fmt(broker, 1)} msg/s; controller accepted ${fmt(accepted, 1)} msg/s = ${fmt(accepted / Math.max(broker, 1e-9), 3)} of the broker's rate`,
  );

  const ctlCpu = cpuShare(s0, s1, (s) => s.cpu.controller);
  const msgs = s1.counters.ingest.received - s0.counters.ingest.received;
  const usPerMsg = msgs ? ((s1.cpu.controller - s0.cpu.controller) * 1e6) / msgs : 0;
  const loopActive = s1.loop.active - s0.loop.active;
  const loopBusy = loopActive / Math.max(1, loopActive + s1.loop.idle - s0.loop.idle);
  const loopUsPerMsg = msgs ? (loopActive * 1000) / msgs : 0;
  out.push(
    `controller: CPU ${pct(ctlCpu)} of one core (${fmt(usPerMsg)} µs a message); event loop busy ${pct(loopBusy)}` +
      ` (${fmt(loopUsPerMsg)} µs a message, fsync waits included: at most ~${fmt(loopUsPerMsg ? 1e6 / loopUsPerMsg : 0)} msg/s of this mix);` +
      ` RSS ${fmt(r.controllerRss.now)} MB (peak ${fmt(r.controllerRss.peak)} MB)`,
  );
  const machine = (s1.machine.busy - s0.machine.busy) / (s1.machine.total - s0.machine.total);
  out.push(
    `beside it: mosquitto ${pct(cpuShare(s0, s1, (s) => s.cpu.broker))} (RSS ${fmt(r.brokerRss.now)} MB),` +
      ` ${o.sims} simulators ${pct(cpuShare(s0, s1, (s) => s.cpu.sims))}, mosquitto_sub ${pct(cpuShare(s0, s1, (s) => s.cpu.observer))};` +
      ` whole machine ${pct(machine)} busy of its ${os.cpus().length} cores (anything else running included)`,
  );

  const disk = (p: Percentiles | undefined): string => (p ? `p50 ${fmt(p.p50, 1)} p99 ${fmt(p.p99, 1)} ms` : '-');
  out.push(`one atomic write (write, fsync, rename, fsync dir) in the state dir's file system: before ${disk(r.atomicWriteMs.before)}, after ${disk(r.atomicWriteMs.after)}`);

  const lagSlope = slope(r.samples.map((x) => ({ x: x.s, y: x.lag })));
  out.push(`lag (sent - received by the controller) every ${o.sampleMs / 1000} s: ${r.samples.map((x) => fmt(x.lag)).join(' ') || '-'}` +
    ` (trend ${lagSlope >= 0 ? '+' : ''}${fmt(lagSlope, 2)} msg/s)`);
  const end = r.drain.end;
  const lost = totalSentOf(end) - end.counters.ingest.received;
  const rejected = Object.entries(end.counters.ingest.rejected).map(([k, v]) => `${k} ${v}`).join(', ');
  // A duplicate is a QoS 1 redelivery the controller rightly dropped, not a failure.
  const refused = Object.entries(end.counters.ingest.rejected).filter(([k]) => k !== 'duplicate').length > 0;
  out.push(
    `after sending stopped: ${lost <= 0 ? `all received within ${fmt(r.drain.ms / 1000, 1)} s` : `${fmt(lost)} never arrived (waited ${fmt(r.drain.ms / 1000, 1)} s)`};` +
      ` rejected: ${rejected || 'none'}; ignored ${end.counters.ingest.ignored};` +
      ` device side: publish errors ${end.sim.publishErrors}, reconnects ${end.sim.reconnects}, metrics skipped offline ${end.sim.skipped}`,
  );
  const info = percentiles(r.delays.info);
  const metrics = percentiles(r.delays.metrics);
  out.push(`end-to-end delay (body time to the controller's receive time, from its events log): info ${delayText(info)}; metrics ${delayText(metrics)}`);

  const l = end.log;
  if (l.warn || l.error || l.reconnects) {
    out.push(`controller log: ${l.warn} warnings, ${l.error} errors, ${l.reconnects} broker reconnects; last: ${l.lastWarning}`);
  }
  const keptUp = lagSlope <= Math.max(0.5, offered * 0.01) && lost <= 0 && !refused && (info?.p99 ?? Infinity) <= KEPT_UP_P99_MS;
  out.push(
    `=> fleet ${fmt(n)} devices: ${fmt(offered, 1)} msg/s offered, controller accepted ${fmt(accepted, 1)} msg/s (${fmt(accepted / Math.max(broker, 1e-9), 2)}x broker),` +
      ` CPU ${pct(ctlCpu)} of a core (event loop busy ${pct(loopBusy)}), RSS ${fmt(r.controllerRss.now)} MB, info delay p50 ${fmt(info?.p50 ?? 0)} p99 ${fmt(info?.p99 ?? 0)} ms,` +
      ` kept up: ${keptUp ? 'yes' : 'NO'}${whatIf}`,
  );
  return out;
}

function totalSentOf(s: Snapshot): number {
  return s.sim.sent.status + s.sim.sent.info + s.sim.sent.metrics;
}
