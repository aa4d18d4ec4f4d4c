// The logs section's end-to-end figure (bench/logs.ts): the whole chain as it
// runs. A device (`dist/zedbox`, every agent in one process) runs an app from the
// test registry; the app waits for a go, then prints the burst; the device's
// logmanager follows it, batches, compresses and queues the lines, zedagent sends
// the batches to the reference controller (`dist/zedbox zedctl serve`, embedded
// broker), which checks, stores and acknowledges each. Measured: lines per second
// from the first line's Docker time to the file of the batch that completes the
// burst on the controller's disk (its mtime, so the polling here does not count),
// the device process's RSS idle (app running, before the go) and at its peak
// during the burst (VmHWM, reset before the go), and its CPU time.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { decodeBatch, LogStore } from '../controller/log-store';
import { dockerClient, LABEL_APP, LABEL_INSTANCE } from '../lib/docker';
import { ConfigBuilder, freePort } from '../test/lib/config-builder';
import { Controller } from '../test/lib/controller';
import { Device } from '../test/lib/device';
import { ensureServices } from '../test/lib/services';
import { median } from './common';

const exec = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const MB = 1024 * 1024;

/** Docker's RFC 3339 nano time as milliseconds (with the fraction). */
export function dockerMs(t: string): number {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(t);
  return Date.parse(`${m?.[1]}Z`) + Number(`0.${m?.[2] ?? '0'}`) * 1000;
}

export interface EndToEndOptions {
  lines: number;
  /** The burst (busybox sh): prints `lines` lines, each with req=<its number as 8 hex digits>. */
  burst: string;
  /** The plain docker logs follower's seconds for the same burst, measured in the same run. */
  baselineSecs: number;
  timeoutMs: number;
}

interface ProcStat { rssKb: number; hwmKb: number; cpuMs: number }

function procStat(pid: number): ProcStat {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), cpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / 100 };
}

/** Reads the batches the controller stored as they come: app lines in seq order, and when the last one landed. */
class StoredReader {
  private readonly store: LogStore;
  private readonly seen = new Set<number>();
  readonly app: Array<{ seq: number; time: string; msg: string }> = [];
  /** Each batch that held app lines: its app lines and its file's mtime (when it was stored). */
  readonly batches: Array<{ seq: number; lines: number; storedMs: number }> = [];
  gzipBytes = 0;
  rawBytes = 0;

  constructor(stateDir: string, private readonly uuid: string, private readonly appName: string) {
    this.store = new LogStore(stateDir);
  }

  get lastStoredMs(): number {
    return Math.max(0, ...this.batches.map((b) => b.storedMs));
  }

  poll(): void {
    for (const seq of this.store.seqs(this.uuid)) {
      if (this.seen.has(seq)) continue;
      const b = this.store.read(this.uuid, seq);
      if (!b) continue;
      this.seen.add(seq);
      const decoded = decodeBatch(b.gzip);
      if (!decoded.ok) throw new Error(`stored batch ${seq}: ${decoded.error}`);
      const mine = decoded.lines.filter((l) => l.app === this.appName);
      if (mine.length === 0) continue;
      this.gzipBytes += Buffer.byteLength(b.gzip, 'base64');
      this.rawBytes += b.rawBytes;
      const storedMs = fs.statSync(path.join(this.store.dirOf(this.uuid), `${String(seq).padStart(12, '0')}.json`)).mtimeMs;
      this.batches.push({ seq, lines: mine.length, storedMs });
      for (const l of mine) this.app.push({ seq, time: l.time, msg: l.msg });
    }
  }
}

export async function benchLogsEndToEnd(o: EndToEndOptions): Promise<string[]> {
  const services = ensureServices();
  const out: string[] = [];
  const ctl = new Controller();
  const device = new Device();
  try {
    await ctl.start();
    const serial = `bench-logs-${randomUUID().slice(0, 8)}`;
    fs.writeFileSync(path.join(device.dirs.config, 'controller.json'), JSON.stringify(await ctl.addDevice(serial)), { mode: 0o600 });
    await device.start();
    const online = await ctl.waitFor(serial, (v) => v.status?.state === 'online' && !!v.record.deviceId, 'the device online', 60_000);
    const uuid = online.record.deviceId!;

    // Defaults everywhere (batch timer 2 s, quota 64 MiB, agents' lines at info); the app gets 2 CPUs, as the baseline's container has.
    const cfg = new ConfigBuilder(`http://${services.registry}`).set('burst', {
      image: services.baseImage, port: await freePort(), memoryMiB: 64,
      command: ['sh', '-c', `while [ ! -e /tmp/go ]; do usleep 100000; done; ${o.burst}; exec sleep 3600`],
    });
    const config = cfg.build();
    for (const a of config.apps ?? []) a.resources.cpus = 2;
    await ctl.setConfig(serial, config);
    const appId = cfg.appId('burst');
    await ctl.waitFor(serial, (v) => v.apps.some((a) => a.id === appId && a.state === 'RUNNING'), 'the app RUNNING', o.timeoutMs);
    const [c] = await dockerClient(services).listContainers({ filters: { label: [`${LABEL_APP}=${appId}`, `${LABEL_INSTANCE}=${device.instance}`] } });
    if (!c) throw new Error('bench: the app has no container');

    // Idle: the app running and waiting, the device settled (its start-up and the download behind it).
    const pid = device.pid!;
    await sleep(5000);
    const idleRss: number[] = [];
    for (let i = 0; i < 10; i++) {
      idleRss.push(procStat(pid).rssKb);
      await sleep(200);
    }
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets VmHWM to the current RSS
    const before = procStat(pid);
    let sampledPeak = 0;

    const reader = new StoredReader(ctl.stateDir, uuid, 'burst');
    await exec('docker', ['exec', c.Id, 'sh', '-c', ': > /tmp/go']);
    const deadline = Date.now() + o.timeoutMs;
    while (reader.app.length < o.lines && Date.now() < deadline) {
      sampledPeak = Math.max(sampledPeak, procStat(pid).rssKb);
      reader.poll();
      await sleep(100);
    }
    const after = procStat(pid);
    if (reader.app.length < o.lines) {
      out.push(`end to end INCOMPLETE: ${fmt(reader.app.length)} of ${fmt(o.lines)} lines stored in ${o.timeoutMs / 1000} s`);
      return out;
    }
    let outOfOrder = 0;
    reader.app.forEach((l, i) => { if (parseInt(/req=([0-9a-f]{8})/.exec(l.msg)?.[1] ?? '0', 16) !== i + 1) outOfOrder++; });
    const first = dockerMs(reader.app[0]!.time);
    const lastPrinted = dockerMs(reader.app.at(-1)!.time);
    const secs = (reader.lastStoredMs - first) / 1000;
    // The burst fills every batch but the last, which closes on its timer: the rate without it is the pipeline's.
    const full = [...reader.batches].sort((a, b) => a.seq - b.seq).slice(0, -1);
    const fullSecs = (Math.max(...full.map((b) => b.storedMs)) - first) / 1000;
    const fullLines = full.reduce((n, b) => n + b.lines, 0);
    const rate = o.lines / secs;
    const idle = median(idleRss) / 1024;
    const peak = Math.max(after.hwmKb, sampledPeak) / 1024;
    out.push(`end to end, app -> stored at the controller (dist/zedbox device, dist/zedbox zedctl serve, embedded broker; defaults):`);
    out.push(`  ${fmt(reader.app.length)} app lines in ${reader.batches.length} batches, ${outOfOrder === 0 && reader.app.length === o.lines ? 'each once, in order' : `${outOfOrder} out of place`}`);
    out.push(`  ${fmt(secs, 2)} s, ${fmt(rate)} lines/s from the first line's Docker time to the last batch's file; the app printed for ${fmt((lastPrinted - first) / 1000, 2)} s, its last line stored ${fmt(reader.lastStoredMs - lastPrinted)} ms after`);
    if (full.length) {
      out.push(`  the ${full.length} batches before the last (${fmt(fullLines)} lines, closed full) stored ${fmt(fullSecs, 2)} s after the first line: ${fmt(fullLines / fullSecs)} lines/s;` +
        ' the last waits for timer.log.batch (2 s) from its first line\'s arrival at logmanager');
    }
    out.push(`  stored: ${fmt(reader.rawBytes / MB, 1)} MB NDJSON as ${fmt(reader.gzipBytes / MB, 2)} MB gzip (${fmt(reader.rawBytes / reader.gzipBytes, 1)}x)`);
    out.push(`  device process (all agents): CPU ${fmt(after.cpuMs - before.cpuMs)} ms during the burst; RSS idle ${fmt(idle, 1)} MB, peak ${fmt(peak, 1)} MB (VmHWM; sampled ${fmt(sampledPeak / 1024, 1)}), after ${fmt(after.rssKb / 1024, 1)} MB`);
    out.push(`=> logs end to end: ${fmt(rate)} lines/s app to stored at the controller; plain docker logs follower ${fmt(o.lines / o.baselineSecs)} lines/s; ratio ${fmt(o.baselineSecs / secs, 2)}`);
    out.push(`=> logs end to end memory: ${fmt(o.lines)}-line burst: device RSS ${fmt(idle, 1)} MB idle, ${fmt(peak, 1)} MB peak (+${fmt(peak - idle, 1)} MB)`);
    return out;
  } finally {
    await device.cleanup();
    await ctl.cleanup();
  }
}
