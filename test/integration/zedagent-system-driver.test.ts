// The system driver on this machine, with the real systeminformation: what it
// reads agrees with Node's own view, the loopback counters move when traffic
// flows, and everything fits the schemas the controller checks.
import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import { DeviceHardwareSchema, DeviceMetricsSchema, DeviceOsSchema, INFO_SCHEMAS } from '../../api/info';
import { deviceInfo, deviceMetrics } from '../../agents/zedagent/info-build';
import { MetricsSampler, bounded, readHardware, readNetworkCounters, type DeviceSample } from '../../agents/zedagent/system-driver';

const COUNTER_FILES = ['rx_bytes', 'tx_bytes', 'rx_packets', 'tx_packets', 'rx_errors', 'tx_errors', 'rx_dropped', 'tx_dropped'];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return [value, Number(process.hrtime.bigint() - start) / 1e6];
}

/** Sends count datagrams of size bytes to a socket on 127.0.0.1 and waits until all arrived. */
async function loopbackTraffic(count: number, size: number): Promise<void> {
  const rx = dgram.createSocket('udp4');
  const tx = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve) => rx.bind(0, '127.0.0.1', resolve));
    const { port } = rx.address();
    const all = new Promise<void>((resolve) => {
      let n = 0;
      rx.on('message', () => { if (++n === count) resolve(); });
    });
    for (let i = 0; i < count; i++) await new Promise<void>((resolve, reject) => tx.send(Buffer.alloc(size), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    await all;
  } finally {
    rx.close();
    tx.close();
  }
}

t.test('readHardware agrees with Node and fits the schemas', async (t) => {
  const times: number[] = [];
  let hw = await readHardware();
  for (let i = 0; i < 5; i++) {
    const [value, ms] = await timed(() => readHardware());
    hw = value;
    times.push(ms);
  }
  t.comment(`readHardware: median ${median(times).toFixed(1)} ms of 5 (${times.map((x) => x.toFixed(0)).join(', ')})`);
  t.same(hw.missing, [], `every reading answered${hw.errors.length ? `: ${hw.errors.join('; ')}` : ''}`);
  t.equal(hw.hardware.cpu.cores, os.cpus().length, 'cores');
  t.equal(hw.hardware.memoryTotalBytes, os.totalmem(), 'memory total');
  t.equal(hw.hardware.cpu.arch, os.arch());
  t.equal(hw.hostname, os.hostname());
  t.equal(hw.os.kernel, os.release());
  t.ok((hw.hardware.storageTotalBytes ?? 0) > 0, 'some storage');
  t.ok(Value.Check(DeviceHardwareSchema, hw.hardware), 'hardware fits its schema');
  t.ok(Value.Check(DeviceOsSchema, hw.os), 'os fits its schema');
  const bootMs = Date.parse(hw.machineBootTime!);
  t.ok(bootMs <= Date.now() && bootMs >= Date.now() - os.uptime() * 1000 - 5000, 'the machine booted about uptime ago');
  const info = deviceInfo({ zedboxVersion: '0.0.0-test', system: hw, startedAt: new Date().toISOString(), bootReason: 'first-boot', restartCounter: 1 });
  t.ok(Value.Check(INFO_SCHEMAS.device, info), 'a device info built from it fits the schema');
});

t.test('MetricsSampler: filesystems, loopback counters that move, schema', async (t) => {
  const sampler = new MetricsSampler();
  const [first, firstMs] = await timed(() => sampler.sample());
  t.comment(`first sample (waits for the currentLoad baseline started at construction): ${firstMs.toFixed(1)} ms`);
  t.same(first.missing, [], `every reading answered${first.errors.length ? `: ${first.errors.join('; ')}` : ''}`);
  t.ok(first.cpuPercent !== undefined && first.cpuPercent >= 0 && first.cpuPercent <= 100, 'cpu percent');

  const times: number[] = [];
  let before: DeviceSample = first;
  for (let i = 0; i < 5; i++) {
    const [s, ms] = await timed(() => sampler.sample());
    before = s;
    times.push(ms);
  }
  t.comment(`sample(): median ${median(times).toFixed(1)} ms of 5 (${times.map((x) => x.toFixed(0)).join(', ')})`);

  t.ok(before.filesystems!.some((f) => f.sizeBytes > 0), 'a filesystem with a size');
  const loBefore = before.network!.find((n) => n.name === 'lo');
  t.ok(loBefore, 'lo is in the network counters');
  const sysNames = fs.readdirSync('/sys/class/net').sort();
  t.same(before.network!.map((n) => n.name), sysNames, 'every interface, down ones included');

  await loopbackTraffic(20, 1000);
  const after = await sampler.sample();
  const loAfter = after.network!.find((n) => n.name === 'lo')!;
  t.ok(loAfter.rxBytes >= loBefore!.rxBytes + 20 * 1000, `lo rx bytes grew by at least what we sent (${loAfter.rxBytes - loBefore!.rxBytes})`);
  t.ok(loAfter.rxPackets >= loBefore!.rxPackets + 20, 'and the packets');

  const m = deviceMetrics(after);
  const first2 = Value.Errors(DeviceMetricsSchema, m).First();
  t.ok(Value.Check(DeviceMetricsSchema, m), `device metrics fit the schema${first2 ? `: ${first2.path} ${first2.message}` : ''}`);
  t.ok(m.filesystems!.some((f) => f.sizeBytes > 0), 'a reported filesystem with a size');
  t.equal(m.memoryTotalBytes, os.totalmem());
  t.ok(m.memoryUsedBytes! > 0 && m.memoryUsedBytes! < os.totalmem(), 'memory used between 0 and total');
  t.equal(m.missing, undefined);
});

t.test('a reading that hangs or fails is reported, not thrown', async (t) => {
  const hung = await bounded(() => new Promise<never>(() => {}), 50, 'hang');
  t.same(hung, { ok: false, error: 'hang took longer than 50 ms' });
  const failed = await bounded(() => Promise.reject(new Error('boom')), 1000, 'fail');
  t.same(failed, { ok: false, error: 'fail failed: boom' });
  const thrown = await bounded(() => { throw new Error('sync'); }, 1000, 'throw');
  t.same(thrown, { ok: false, error: 'throw failed: sync' });
  t.same(await bounded(async () => 7, 1000, 'fine'), { ok: true, value: 7 });
});

t.test('a reading that hangs is reported missing, not started again until it ends, then read again', async (t) => {
  // A FIFO in place of a counter file: reading it blocks until a writer comes, as a stuck filesystem would.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-sysnet-'));
  const stats = path.join(dir, 'hang0', 'statistics');
  fs.mkdirSync(stats, { recursive: true });
  for (const f of COUNTER_FILES) if (f !== 'rx_bytes') fs.writeFileSync(path.join(stats, f), '1\n');
  const fifo = path.join(stats, 'rx_bytes');
  execFileSync('mkfifo', [fifo]);
  let released = false;
  /** Unblocks the stuck reader (it gets "777"), and leaves a plain file with "5" for the readings after. */
  const release = () => {
    if (released) return;
    released = true;
    const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK); // a reader is waiting: does not block
    fs.writeFileSync(`${fifo}.new`, '5\n');
    fs.renameSync(`${fifo}.new`, fifo);
    fs.writeSync(fd, '777\n');
    fs.closeSync(fd);
  };
  t.teardown(() => {
    try { release(); } catch { /* no reader left */ }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const sampler = new MetricsSampler({ timeoutMs: 1000, sysNetDir: dir });
  const s1 = await sampler.sample();
  t.ok(s1.missing.includes('network'), 'the network reading is missing');
  t.equal(s1.network, undefined);
  t.ok(s1.errors.includes('network took longer than 1000 ms'), 'and why');
  const s2 = await sampler.sample();
  t.ok(s2.errors.includes('network: the previous reading has not finished'), 'the hung call is not piled on');
  t.ok(Value.Check(DeviceMetricsSchema, deviceMetrics(s2)), 'what there is fits the schema');

  release();
  let s3 = await sampler.sample();
  for (let i = 0; i < 50 && s3.missing.includes('network'); i++) {
    await new Promise((r) => setTimeout(r, 20));
    s3 = await sampler.sample();
  }
  t.notOk(s3.missing.includes('network'), 'read again once the stuck call ended');
  t.equal(s3.network?.find((n) => n.name === 'hang0')?.rxBytes, 5, 'a fresh reading, not what the stuck call got late');
});

t.test('network counters skip what is not an interface, or vanished', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-sysnet-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const stats = path.join(dir, 'veth1', 'statistics');
  fs.mkdirSync(stats, { recursive: true });
  for (const f of COUNTER_FILES) {
    fs.writeFileSync(path.join(stats, f), f === 'rx_bytes' ? '12345\n' : '1\n');
  }
  fs.writeFileSync(path.join(dir, 'veth1', 'operstate'), 'down\n');
  fs.mkdirSync(path.join(dir, 'gone'));
  t.same(await readNetworkCounters(dir), [{
    name: 'veth1', operstate: 'down', rxBytes: 12345, txBytes: 1, rxPackets: 1, txPackets: 1, rxErrors: 1, txErrors: 1, rxDrops: 1, txDrops: 1,
  }]);
});
