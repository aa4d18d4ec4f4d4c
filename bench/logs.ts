// Section logs: an app prints a burst of lines (100,000 by default); logmanager,
// in its own process, follows the container, batches, compresses and publishes
// them; the benchmark stands in for zedagent and acknowledges each batch. It
// measures lines per second from the app's first line (Docker's time) to the last
// batch acknowledged, against the engine alone delivering the same lines; the
// batches' size against `gzip -6` of the same NDJSON in one stream, and the time
// to compress them in-process against gzip -6's; and logmanager's RSS and heap,
// idle and at their peak during the burst. Then the same burst end to end
// (bench/logs-e2e.ts): from the app on a dist/zedbox device to stored at a
// `dist/zedbox zedctl serve` controller, against the same baseline, with the device
// process's RSS idle and at its peak.
// Env: BENCH_LOG_LINES (100000), BENCH_LOG_TIMEOUT_MS (180000). Run alone: npx tsx bench/logs.ts
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { dockerClient, LABEL_INSTANCE, LABEL_OWNED } from '../lib/docker';
import { Logger } from '../lib/log';
import { Bus } from '../pubsub/bus';
import { DomainStatusCollection } from '../pubsub/collections/apps';
import { ConfigItemValueMapCollection } from '../pubsub/collections/config';
import { defaultConfigItems } from '../pubsub/collections/config-items';
import { LogBatchAckCollection, LogBatchCollection, LogManagerStatusCollection } from '../pubsub/collections/logs';
import { CursorGate, LogStreamParser } from '../agents/logmanager/docker-lines';
import { Intake } from '../agents/logmanager/intake';
import { LogQueue } from '../agents/logmanager/log-queue';
import { QueueStore } from '../agents/logmanager/queue-store';
import { Publication } from '../pubsub/publication';
import { ensureServices } from '../test/lib/services';
import { benchLogsEndToEnd, dockerMs } from './logs-e2e';
import { Child } from './procs';

const exec = promisify(execFile);
const LINES = Number(process.env.BENCH_LOG_LINES ?? 100_000);
const TIMEOUT_MS = Number(process.env.BENCH_LOG_TIMEOUT_MS ?? 180_000);
const MB = 1024 * 1024;
const quietLog = new Logger({ source: 'bench', level: 'error', sink: { write: () => undefined } });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** Access-log-like lines with some variety (busybox awk, fixed seed); req= is the line's number. */
const BURST = `awk 'BEGIN{srand(1); split("GET POST PUT DELETE",m," "); for(i=1;i<=${LINES};i++){` +
  ` printf "%s /api/v1/items/%d %d %dms req=%08x user=u%03d\\n", m[int(rand()*4)+1], int(rand()*5000), (rand()<0.95?200:500), int(rand()*300), i, int(rand()*200) }}'`;
const SCRIPT = `sleep 1; ${BURST}; sleep 3600`;

interface Mem { now: { rss: number; heap: number }; peak: { rss: number; heap: number }; cpuMs: number }

/** CPU time (ms) dockerd has used so far, from /proc (0 if it cannot be read). */
function dockerdCpuMs(): number {
  try {
    const pid = fs.readdirSync('/proc').find((d) => /^\d+$/.test(d) && fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'dockerd');
    if (!pid) return 0;
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime in clock ticks (100/s)
  } catch {
    return 0;
  }
}

export async function benchLogs(): Promise<string[]> {
  const { out, baselineSecs } = await benchLogmanager();
  if (baselineSecs === undefined) return out;
  return [...out, ...await benchLogsEndToEnd({ lines: LINES, burst: BURST, baselineSecs, timeoutMs: TIMEOUT_MS })];
}

/** logmanager alone, the test standing in for zedagent; and the baseline, a plain docker logs follower. */
async function benchLogmanager(): Promise<{ out: string[]; baselineSecs?: number }> {
  const services = ensureServices();
  const root = fs.mkdtempSync('/tmp/zbl-'); // short: socket paths
  const dirs = { run: path.join(root, 'run'), persist: path.join(root, 'persist'), config: path.join(root, 'config') };
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const out: string[] = [];
  const child = new Child('logmanager', 'logs-child.ts', [dirs.run, dirs.persist, dirs.config], { stdout: 'ignore' });
  const bus = new Bus({ runDir: dirs.run, persistDir: dirs.persist, log: quietLog });
  const docker = dockerClient(services);
  let containerId: string | undefined;
  try {
    await child.next('ready', 30_000);
    const zedagent = await bus.endpoint('zedagent');
    const domainmgr = await bus.endpoint('domainmgr');
    zedagent.publication(ConfigItemValueMapCollection).publish('global', { items: { ...defaultConfigItems(), 'timer.log.batch': '0.2' } });
    const acks = zedagent.publication(LogBatchAckCollection);

    // The stand-in for zedagent acknowledges at once and keeps the batches; they are checked after
    // the clock stops (the controller's own work is not what this measures).
    const got: Array<{ seq: number; gz: Buffer }> = [];
    let lines = 0;
    let doneAt = 0;
    bus.subscribe(LogBatchCollection, {
      agent: 'bench',
      create: (key, b) => {
        acks.publish(key, { seq: b.seq, storedAt: new Date().toISOString() });
        got.push({ seq: b.seq, gz: Buffer.from(b.gzip, 'base64') });
        lines += b.lines;
        if (lines >= LINES && !doneAt) doneAt = Date.now();
      },
      delete: (key) => { if (acks.get(key)) acks.unpublish(key); },
    });
    const status = bus.subscribe(LogManagerStatusCollection, { agent: 'bench' });
    await status.whenSynchronized(AbortSignal.timeout(30_000));
    await sleep(1000);
    const idle = await child.ask<Mem & { type: string }>({ type: 'mem', reset: true }, 'mem', 5000);

    const dockerd0 = dockerdCpuMs();
    const c = await docker.createContainer({
      Image: services.baseImage, Cmd: ['sh', '-c', SCRIPT], HostConfig: { NetworkMode: 'none' },
      Labels: { [LABEL_OWNED]: 'true', [LABEL_INSTANCE]: `bench-logs-${process.pid}` },
    });
    containerId = c.id;
    await c.start();
    const appId = randomUUID();
    domainmgr.publication(DomainStatusCollection).publish(appId, { appId, name: 'bench', state: 'RUNNING', activated: true, specHash: 'b', containerId: c.id, restarts: 0 });
    const deadline = Date.now() + TIMEOUT_MS;
    while (!doneAt && Date.now() < deadline) await sleep(20);
    const burst = await child.ask<Mem & { type: string }>({ type: 'mem' }, 'mem', 5000);
    const dockerdMs = dockerdCpuMs() - dockerd0;
    if (!doneAt) {
      out.push(`INCOMPLETE: ${fmt(lines)} of ${fmt(LINES)} lines in ${TIMEOUT_MS / 1000} s`);
      return { out };
    }
    // Now the check: every line once, in order (req= is the line's number).
    got.sort((a, b) => a.seq - b.seq);
    const texts = got.map((g) => gunzipSync(g.gz).toString('utf8'));
    const gzBytes = got.reduce((n, g) => n + g.gz.length, 0);
    let firstTime = '';
    let lastTime = '';
    let expect = 1;
    let outOfOrder = 0;
    let count = 0;
    for (const text of texts) {
      for (const l of text.split('\n')) {
        if (!l) continue;
        const line = JSON.parse(l) as { time: string; msg: string };
        firstTime ||= line.time;
        lastTime = line.time;
        if (parseInt(/req=([0-9a-f]{8})/.exec(line.msg)?.[1] ?? '0', 16) !== expect++) outOfOrder++;
        count++;
      }
    }
    const secs = (doneAt - dockerMs(firstTime)) / 1000;
    const rate = LINES / secs;
    out.push(`${fmt(count)} lines, ${got.length} batches, ${outOfOrder === 0 && count === LINES ? 'each once, in order' : `${outOfOrder} out of place, ${count} received`}`);
    out.push(`app -> acknowledged batches: ${fmt(secs, 2)} s, ${fmt(rate)} lines/s (from the first line's Docker time to the last ack)`);
    const printSecs = (dockerMs(lastTime) - dockerMs(firstTime)) / 1000;
    out.push(`CPU during the run: logmanager ${fmt(burst.cpuMs - idle.cpuMs)} ms, dockerd ${fmt(dockerdMs)} ms (2 cores shared with the app and this process)`);
    out.push(`the app itself printed them in ${fmt(printSecs, 2)} s (${fmt(LINES / printSecs)} lines/s, Docker's times); the last ack came ${fmt(doneAt - dockerMs(lastTime))} ms after its last line`);

    // Baseline: a plain reader of the engine's logs API, following a fresh container printing the same burst.
    const dockerd1 = dockerdCpuMs();
    const base = await followBaseline(docker, services.baseImage);
    out.push(`baseline, a plain follower of the same burst (a fresh container): ${fmt(base.secs, 2)} s, ${fmt(LINES / base.secs)} lines/s; dockerd CPU ${fmt(dockerdCpuMs() - dockerd1)} ms`);
    out.push(`=> logs throughput: ${fmt(rate)} lines/s app to acknowledged batch; plain docker logs follower ${fmt(LINES / base.secs)} lines/s; ratio ${fmt(base.secs / secs, 2)}`);

    const own = inProcess(root, texts);
    out.push(`=> logs in-process: ${fmt(own)} lines/s through logmanager's parser, queue, gzip and disk alone (the same lines, no engine, no bus)`);

    // Compression: the batches against gzip -6 of the same NDJSON as one stream.
    const ndjson = path.join(root, 'lines.ndjson');
    fs.writeFileSync(ndjson, texts.join(''));
    const rawBytes = fs.statSync(ndjson).size;
    const g0 = performance.now();
    await exec('sh', ['-c', `gzip -6 -c ${ndjson} > ${ndjson}.gz`]);
    const gzipMs = performance.now() - g0;
    const gzipBytes = fs.statSync(`${ndjson}.gz`).size;
    const z0 = performance.now();
    for (const text of texts) gzipSync(text);
    const zlibMs = performance.now() - z0;
    out.push(`NDJSON ${fmt(rawBytes / MB, 1)} MB: batches ${fmt(gzBytes / MB, 2)} MB (ratio ${fmt(rawBytes / gzBytes, 1)}x), gzip -6 one stream ${fmt(gzipBytes / MB, 2)} MB (${fmt(rawBytes / gzipBytes, 1)}x)`);
    out.push(`compression time: zlib per batch in-process ${fmt(zlibMs)} ms, gzip -6 CLI ${fmt(gzipMs)} ms`);
    out.push(`=> logs compression: batches ${fmt(rawBytes / gzBytes, 1)}x, gzip -6 ${fmt(rawBytes / gzipBytes, 1)}x; bytes batches/gzip ${fmt(gzBytes / gzipBytes, 2)}; time zlib/gzip ${fmt(zlibMs / gzipMs, 2)}`);
    out.push(`logmanager memory: idle RSS ${fmt(idle.now.rss, 1)} MB heap ${fmt(idle.now.heap, 1)} MB; burst peak RSS ${fmt(burst.peak.rss, 1)} MB heap ${fmt(burst.peak.heap, 1)} MB; after RSS ${fmt(burst.now.rss, 1)} MB`);
    out.push(`=> logs memory: ${fmt(LINES)}-line burst adds ${fmt(burst.peak.rss - idle.now.rss, 1)} MB RSS, ${fmt(burst.peak.heap - idle.now.heap, 1)} MB heap at peak (NDJSON ${fmt(rawBytes / MB, 1)} MB)`);
    return { out, baselineSecs: base.secs };
  } finally {
    if (containerId) await docker.getContainer(containerId).remove({ force: true }).catch(() => undefined);
    await child.stop(5000);
    await bus.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** logmanager's own cost: the received lines as Docker frames through its parser, intake and queue
 *  (real files in a temp dir; every published batch acknowledged at once). Lines per second. */
function inProcess(root: string, texts: string[]): number {
  const dir = path.join(root, 'inproc');
  const store = new QueueStore(dir);
  const publication = new Publication(LogBatchCollection, 'logmanager', { send: () => undefined }, quietLog);
  const timers: NodeJS.Timeout[] = [];
  const queue = new LogQueue({ store, publication, log: quietLog, setTimeout: (fn, ms) => { const h = setTimeout(fn, ms); timers.push(h); return h; } });
  queue.recover();
  const intake = new Intake(queue, quietLog);
  const frames: Buffer[] = [];
  for (const text of texts) {
    for (const l of text.split('\n')) {
      if (!l) continue;
      const line = JSON.parse(l) as { time: string; msg: string };
      const body = Buffer.from(`${line.time} ${line.msg}\n`);
      const head = Buffer.alloc(8);
      head[0] = 1;
      head.writeUInt32BE(body.length, 4);
      frames.push(head, body);
    }
  }
  const all = Buffer.concat(frames);
  const lines = frames.length / 2;
  const parser = new LogStreamParser(false, new CursorGate());
  const app = { appId: randomUUID(), name: 'bench', containerId: 'inproc' };
  const t0 = performance.now();
  for (let off = 0; off < all.length; off += 64 * 1024) {
    parser.push(all.subarray(off, off + 64 * 1024), (l) => intake.appOutput(app, l));
    queue.flush();
    for (const key of publication.keys()) queue.ack(Number(key), 'now');
  }
  queue.closeBatch();
  const secs = (performance.now() - t0) / 1000;
  queue.stop();
  for (const h of timers) clearTimeout(h);
  return lines / secs;
}

/** The same burst read by nothing but a follower of the logs API: seconds from the first line's Docker time to the last line read. */
async function followBaseline(docker: ReturnType<typeof dockerClient>, image: string): Promise<{ secs: number }> {
  const c = await docker.createContainer({
    Image: image, Cmd: ['sh', '-c', SCRIPT], HostConfig: { NetworkMode: 'none' },
    Labels: { [LABEL_OWNED]: 'true', [LABEL_INSTANCE]: `bench-logs-${process.pid}` },
  });
  try {
    await c.start();
    const stream = await c.logs({ follow: true, stdout: true, stderr: true, timestamps: true });
    let firstMs = 0;
    let lines = 0;
    let carry: Buffer = Buffer.alloc(0);
    const doneAt = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`baseline: ${lines} of ${LINES} lines in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      stream.on('data', (chunk: Buffer) => {
        carry = carry.length ? Buffer.concat([carry, chunk]) : chunk;
        let off = 0;
        while (off + 8 <= carry.length && off + 8 + carry.readUInt32BE(off + 4) <= carry.length) {
          const len = carry.readUInt32BE(off + 4);
          if (!firstMs) firstMs = dockerMs(carry.subarray(off + 8, off + 8 + len).toString().split(' ')[0] ?? '');
          off += 8 + len;
          lines++;
        }
        carry = carry.subarray(off);
        if (lines >= LINES) {
          clearTimeout(timer);
          resolve(Date.now());
        }
      });
    });
    (stream as unknown as { destroy(): void }).destroy();
    return { secs: (doneAt - firstMs) / 1000 };
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}

if (require.main === module) {
  benchLogs().then((lines) => { for (const l of lines) console.log(l); process.exit(0); }, (err) => { console.error(err); process.exit(1); });
}
