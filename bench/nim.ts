// nim: from a broken management port to a working fallback. nim runs in a device
// network namespace with two static management ports (A from the controller, B
// from a local file) and a real Mosquitto behind a router namespace; the bench cuts
// A's gateway and times, from the status nim publishes, detection (cut to nim
// applying the fallback) and switch (to the status saying B reaches the broker),
// with timer.port.testinterval 1 s and timer.port.timeout 1 s. Baseline in the same
// run: the same switch done by hand, with `ip` commands and one TCP connect.
// Env: BENCH_NIM_RUNS (5). Run alone: node --import tsx bench/nim.ts
import { execFileSync } from 'node:child_process';
import { DeviceNetworkStatusCollection, type DeviceNetworkStatus, type NetworkPortConfig } from '../pubsub/collections';
import { BROKER_IP, BROKER_PORT, NimLab, type LabPort } from '../test/lib/nim-lab';
import { median, msSince } from './common';

const RUNS = Number(process.env.BENCH_NIM_RUNS ?? 5);
const INTERVAL_S = 1;
const TIMEOUT_S = 1;
/** EVE's design bound: two failed tests (each up to an interval plus a timeout), then the switch. */
const BOUND_MS = 2 * (INTERVAL_S + TIMEOUT_S) * 1000 + 1000;
const WAIT_MS = 30_000;

const A: LabPort = { name: 'ethA', net: 1 };
const B: LabPort = { name: 'ethB', net: 2 };
const staticPort = (p: LabPort): NetworkPortConfig => ({
  ifName: p.name, management: true, cost: 0, addressing: { type: 'static', address: `10.200.${p.net}.2/24`, gateway: `10.200.${p.net}.1` },
});
const fmt = (ms: number): string => `${ms.toFixed(0)} ms`;
const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');

/** Polls the status every 5 ms (the harness's 25 ms would blur the figures). */
async function until(lab: NimLab, pred: (s: Readonly<DeviceNetworkStatus>) => boolean, what: string): Promise<void> {
  const sub = lab.watch(DeviceNetworkStatusCollection);
  for (const deadline = Date.now() + WAIT_MS; ;) {
    const s = sub.get('global');
    if (s && pred(s)) return;
    if (Date.now() > deadline) throw new Error(`bench nim: timed out waiting for ${what}; last status ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const reaches = (s: Readonly<DeviceNetworkStatus>, key: string, ifName: string): boolean =>
  s.dpcKey === key && s.ports[0]?.ifName === ifName && s.ports[0].reachesController === true && !s.testing;

async function nimRuns(): Promise<{ detect: number[]; sw: number[] }> {
  const lab = new NimLab([A, B]);
  try {
    lab.setUp();
    await lab.startBroker();
    lab.writeProvisioning();
    lab.writeLocalFile('b.json', { ports: [staticPort(B)] });
    lab.startNim();
    await lab.publishItems({ 'timer.port.testinterval': String(INTERVAL_S), 'timer.port.timeout': String(TIMEOUT_S), 'timer.port.testbetterinterval': '2' });
    await lab.publishPorts([staticPort(A)]);
    const detect: number[] = [];
    const sw: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await until(lab, (s) => reaches(s, 'zedagent', 'ethA'), 'ethA in use');
      // The status comes right after a test: cut at a random point of the interval, as a real fault would.
      await new Promise((r) => setTimeout(r, Math.random() * INTERVAL_S * 1000));
      const t0 = process.hrtime.bigint();
      lab.ip(lab.router, ['addr', 'del', `10.200.${A.net}.1/24`, 'dev', `r${A.name}`]);
      await until(lab, (s) => s.dpcKey === 'local', 'nim applying the fallback');
      const t1 = msSince(t0);
      await until(lab, (s) => reaches(s, 'local', 'ethB'), 'ethB reaching the broker');
      const t2 = msSince(t0);
      detect.push(t1);
      sw.push(t2 - t1);
      lab.ip(lab.router, ['addr', 'add', `10.200.${A.net}.1/24`, 'dev', `r${A.name}`]);
    }
    return { detect, sw };
  } finally {
    await lab.cleanup();
  }
}

/** The same switch by hand: A's address off, B's on, the default route through B, one TCP connect to the broker. */
async function manualRuns(): Promise<number[]> {
  const lab = new NimLab([A, B]);
  try {
    lab.setUp();
    await lab.startBroker();
    const out: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      lab.ip(lab.dev, ['addr', 'flush', 'dev', B.name]);
      lab.ip(lab.dev, ['addr', 'replace', `10.200.${A.net}.2/24`, 'dev', A.name]);
      lab.ip(lab.dev, ['route', 'replace', 'default', 'via', `10.200.${A.net}.1`]);
      const t0 = process.hrtime.bigint();
      lab.ip(lab.dev, ['addr', 'del', `10.200.${A.net}.2/24`, 'dev', A.name]);
      lab.ip(lab.dev, ['addr', 'add', `10.200.${B.net}.2/24`, 'dev', B.name]);
      lab.ip(lab.dev, ['route', 'replace', 'default', 'via', `10.200.${B.net}.1`]);
      execFileSync('ip', ['netns', 'exec', lab.dev, 'bash', '-c', `exec 3<>/dev/tcp/${BROKER_IP}/${BROKER_PORT}`], { stdio: 'ignore', timeout: 5000 });
      out.push(msSince(t0));
    }
    return out;
  } finally {
    await lab.cleanup();
  }
}

export async function benchNim(): Promise<string[]> {
  const manual = await manualRuns();
  const { detect, sw } = await nimRuns();
  const total = detect.map((d, i) => d + sw[i]!);
  const m = { detect: median(detect), sw: median(sw), total: median(total), manual: median(manual) };
  return [
    `test interval ${INTERVAL_S} s, timeout ${TIMEOUT_S} s, ${RUNS} runs`,
    ...total.map((x, i) => `run ${i + 1}: detection ${fmt(detect[i]!)}, switch ${fmt(sw[i]!)}, total ${fmt(x)}`),
    `by hand (ip addr/route + one TCP connect): ${manual.map(fmt).join(', ')}`,
    `=> nim fallback: detection ${fmt(m.detect)} + switch ${fmt(m.sw)} = ${fmt(m.total)} (bound 2 x (interval + timeout) + 1 s = ${fmt(BOUND_MS)}) ${mark(m.total <= BOUND_MS)}; ` +
      `switch by hand ${fmt(m.manual)}: nim switch/by hand ${(m.sw / m.manual).toFixed(1)}, total/by hand ${(m.total / m.manual).toFixed(1)}`,
  ];
}

if (require.main === module) {
  benchNim().then((lines) => console.log(lines.join('\n')), (err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
