// `make bench`: bus vs raw zeromq throughput and latency across processes, the
// bundled program's memory and start-up time, content download and verification
// against curl and sha256sum, and apps from config to RUNNING against skopeo +
// docker load + docker run; a controller with 1,000 simulated devices; config
// through the broker against a local file; nim's fallback after a broken port against the same switch
// by hand; app logs to acknowledged batches, and to the controller, against a plain docker logs follower and gzip -6;
// each beside a baseline measured in the same run.
// Usage: main.ts [throughput] [latency] [zedbox] [content] [apps] [fleet] [config] [nim] [logs] (default: all).
import * as os from 'node:os';
import { median, shapeFor, type GcStats, type RunCmd } from './common';
import { Pair, killAll } from './procs';
import { benchApps } from './apps';
import { benchConfigPath } from './config-path';
import { benchContent } from './content';
import { benchFleet } from './fleet';
import { benchLogs } from './logs';
import { benchNim } from './nim';
import { benchZedbox } from './zedbox';

// BENCH_KEYS=N: how many keys the updates cycle over (the retained set a subscriber replicates).
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const SIZES = [200, 10 * 1024];
const BURST_N: Record<number, number> = { 200: 100_000, [10 * 1024]: 20_000 };
const ROUNDS = 3;
const PACED_RATE = 1000;
const PACED_MS = 5000;
const WATCHDOG_MS = 20 * 60_000;

const TARGET_RATIO = 0.5;
const TARGET_P99_MS = 5;

const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const gcText = (g: GcStats): string => `${g.count} GCs ${fmt(g.totalMs)} ms (max ${fmt(g.maxMs, 1)})`;
const sizeName = (size: number): string => (size >= 1024 ? `${size / 1024} KB` : `${size} B`);

let nextBase = 1;
function cmd(kind: RunCmd['kind'], size: number, n: number, timeoutMs: number, k = KEYS): RunCmd {
  const base = nextBase;
  nextBase += n + 1;
  return { type: 'run', kind, n, k, size, base, rate: PACED_RATE, warm: kind === 'paced' ? 200 : 0, timeoutMs };
}

/** Latency cases: each size over KEYS keys, and 10 KB over 10 keys in fresh processes. A subscriber
 *  keeps a parsed replica of every key, and the tail follows how much of it the process holds: 1,000
 *  keys of 10 KB (left by the earlier cases too) is the collector's worst case; a few large values
 *  (app configs) is the usual one, measured where no larger replica sits in the heap. */
const LATENCY_CASES: Array<{ size: number; k: number; fresh?: boolean }> = [
  ...SIZES.map((size) => ({ size, k: KEYS })),
  { size: 10 * 1024, k: 10, fresh: true },
];

const summary: string[] = [];

async function throughput(pairs: Pair[]): Promise<void> {
  console.log(`\n== 1. Collection updates/s across processes (${KEYS} keys cycled, median of ${ROUNDS} interleaved rounds)`);
  console.log('   raw = zeromq PUB/SUB, HWM unlimited, JSON.parse per message; bus = Bus endpoint+Publication -> Bus.subscribe');
  for (const size of SIZES) {
    const n = BURST_N[size] as number;
    const rates: Record<string, number[]> = { raw: [], bus: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const pair of pairs) {
        const { sent, done } = await pair.run(cmd('burst', size, n, 30_000));
        const secs = Number(done.tEnd - sent.t0) / 1e9;
        const rate = done.complete ? n / secs : 0;
        rates[pair.impl]?.push(rate);
        const pubRate = sent.sent / (Number(sent.t1 - sent.t0) / 1e9);
        const reasons = Object.entries(done.reasons).map(([k, v]) => `${v}x ${k}`).join('; ');
        console.log(
          `   ${sizeName(size).padStart(5)} ${pair.impl} round ${r + 1}: ${fmt(rate).padStart(7)} upd/s (${fmt((rate * size) / 1e6, 1)} MB/s)` +
            `${done.complete ? '' : ` INCOMPLETE: ${done.missing} keys never reached their final value`}` +
            ` in ${fmt(secs, 2)} s; publisher done after ${fmt(Number(sent.t1 - sent.t0) / 1e6)} ms (${fmt(pubRate)}/s)` +
            ` | handler calls ${fmt(done.applied)}, resyncs ${done.resyncs}${reasons ? ` (${reasons})` : ''}`,
        );
        console.log(
          `          RSS at end (process peak) pub ${fmt(sent.rss.now)} (${fmt(sent.rss.peak)}) MB, sub ${fmt(done.rss.now)} (${fmt(done.rss.peak)}) MB` +
            ` | GC pub ${gcText(sent.gc)}, sub ${gcText(done.gc)}` +
            (sent.maxBacklog !== undefined ? ` | bus send-queue backlog max ${fmt(sent.maxBacklog)}` : ''),
        );
      }
    }
    const raw = median(rates.raw as number[]);
    const bus = median(rates.bus as number[]);
    const ratio = raw > 0 ? bus / raw : 0;
    const line = `throughput ${sizeName(size).padStart(5)}: bus ${fmt(bus).padStart(7)}/s  raw ${fmt(raw).padStart(7)}/s  bus/raw ${fmt(ratio, 2)}  target >= ${TARGET_RATIO}x  ${mark(ratio >= TARGET_RATIO)}`;
    console.log('   => ' + line);
    summary.push(line);
  }
}

async function latency(pairs: Pair[]): Promise<void> {
  const n = (PACED_RATE * PACED_MS) / 1000;
  console.log(`\n== 2. One-way latency at ${PACED_RATE} updates/s for ${PACED_MS / 1000} s (hrtime in the value; first 200 not counted)`);
  for (const { size, k, fresh } of LATENCY_CASES) {
    const label = `${sizeName(size)} x${k} keys${fresh ? ' (fresh processes)' : ''}`;
    const casePairs = fresh ? await freshPairs(size, k) : pairs;
    let got: Record<string, Percentiles>;
    try {
      got = await latencyCase(casePairs, size, k, label, n);
    } finally {
      if (fresh) await Promise.all(casePairs.map((p) => p.stop()));
    }
    const { bus, raw } = got;
    if (!bus || !raw) continue;
    const line =
      `latency ${label}: bus p50 ${fmt(bus.p50, 3)} p99 ${fmt(bus.p99, 3)} ms | raw p50 ${fmt(raw.p50, 3)} p99 ${fmt(raw.p99, 3)} ms` +
      ` | bus/raw p50 ${fmt(bus.p50 / raw.p50, 2)} p99 ${fmt(bus.p99 / raw.p99, 2)} | target p99 < ${TARGET_P99_MS} ms ${mark(bus.p99 < TARGET_P99_MS)}`;
    console.log('   => ' + line);
    summary.push(line);
  }
}

async function freshPairs(size: number, k: number): Promise<Pair[]> {
  const pairs = [await new Pair('raw').start(), await new Pair('bus').start()];
  for (const pair of pairs) await pair.run(cmd('burst', size, 2000, 20_000, k));
  return pairs;
}

type Percentiles = { p50: number; p99: number };

/** One paced run per pair; prints each and returns the percentiles by implementation. */
async function latencyCase(pairs: Pair[], size: number, k: number, label: string, n: number): Promise<Record<string, Percentiles>> {
  const got: Record<string, Percentiles> = {};
  for (const pair of pairs) {
    const { sent, done } = await pair.run(cmd('paced', size, n, PACED_MS + 10_000, k));
    const l = done.lat;
    const rate = sent.sent / (Number(sent.t1 - sent.t0) / 1e9);
    if (!l) {
      console.log(`   ${label} ${pair.impl}: no samples (complete=${done.complete})`);
      continue;
    }
    got[pair.impl] = l;
    console.log(
      `   ${label} ${pair.impl}: p50 ${fmt(l.p50, 3)} ms  p99 ${fmt(l.p99, 3)} ms  max ${fmt(l.max, 2)} ms` +
        `  (${l.count} samples, sent ${fmt(rate)}/s, resyncs ${done.resyncs}${done.complete ? '' : ', INCOMPLETE'})` +
        ` | GC pub ${gcText(sent.gc)}, sub ${gcText(done.gc)}`,
    );
  }
  return got;
}

async function main(): Promise<void> {
  const started = Date.now();
  const want = (s: string): boolean => process.argv.length <= 2 || process.argv.includes(s);
  const watchdog = setTimeout(() => {
    console.log(`\nWATCHDOG: benchmark still running after ${WATCHDOG_MS / 1000} s; stopping`);
    killAll();
    setTimeout(() => process.exit(2), 3500);
  }, WATCHDOG_MS);
  watchdog.unref();

  const cpu = os.cpus()[0]?.model ?? '?';
  console.log(`zedbox bench: node ${process.version}, ${os.cpus().length} x ${cpu}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`payloads: ${SIZES.map((s) => `${sizeName(s)} = ${shapeFor(s).items.length} items + ${shapeFor(s).note.length} B padding`).join(', ')}`);

  if (want('throughput') || want('latency')) {
    const pairs: Pair[] = [];
    try {
      pairs.push(await new Pair('raw').start(), await new Pair('bus').start());
      // Warm the JIT of every process with each size before anything is timed.
      for (const size of SIZES) for (const pair of pairs) await pair.run(cmd('burst', size, 5000, 20_000));
      if (want('throughput')) await throughput(pairs);
      if (want('latency')) await latency(pairs);
    } finally {
      await Promise.all(pairs.map((p) => p.stop()));
    }
  }

  if (want('zedbox')) {
    console.log('\n== 3. dist/zedbox: idle RSS and start-up time to "all agents ready"');
    for (const line of await benchZedbox()) {
      if (line.startsWith('=> ')) summary.push(line.slice(3));
      console.log('   ' + line);
    }
  }

  const sections: Array<[string, string, () => Promise<string[]>]> = [
    ['content', '4. content: download against curl, verification against sha256sum (same files, same run)', benchContent],
    ['apps', '5. apps: config to RUNNING against skopeo copy + docker load + docker run; 50 apps; one change in 50', benchApps],
    ['fleet', '6. fleet: one controller and 1,000 simulated devices through Mosquitto; ed25519 in tweetnacl and Node', benchFleet],
    ['config', '7. config: through the controller and its broker to app RUNNING, against the same config as a local file', benchConfigPath],
    ['nim', '8. nim: from a broken management port to a working fallback, against the same switch by hand (ip + one TCP connect)', benchNim],
    ['logs', '9. logs: 100,000 app lines to acknowledged LogBatches and end to end to the controller, against a plain docker logs follower and gzip -6; memory', benchLogs],
  ];
  for (const [name, title, run] of sections) {
    if (!want(name)) continue;
    console.log(`\n== ${title}`);
    for (const line of await run()) {
      if (line.startsWith('=> ')) summary.push(line.slice(3));
      console.log('   ' + line);
    }
  }

  console.log(`\n== Summary (${fmt((Date.now() - started) / 1000, 1)} s)`);
  for (const line of summary) console.log('   ' + line);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    killAll();
    setTimeout(() => process.exit(1), 3500);
  },
);
