// Logs end to end, the whole chain as it runs: an app's container on the real
// engine, logmanager and zedagent in the built bundle (`dist/zedbox`, every agent
// in one process), the reference controller (`dist/zedbox zedctl serve`, its
// embedded broker) storing the batches, and `zedctl logs` showing them. The test
// does what an operator does (zedctl), plus what the app does: it prints more
// numbered lines when asked (a request file the test drops in with `docker
// exec`), so lines can be printed while the controller is away. Every check reads
// `zedctl logs`; the device's own files are read only to know that lines are
// queued before zedbox is stopped.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { dockerClient, LABEL_APP, LABEL_INSTANCE } from '../../lib/docker';
import { LogManagerStatusCollection } from '../../pubsub/collections/logs';
import { ConfigBuilder, freePort } from '../lib/config-builder';
import { Controller } from '../lib/controller';
import { Device } from '../lib/device';
import { ZEDBOX, start, type Proc } from '../lib/proc';
import { ensureServices } from '../lib/services';
import { waitUntil } from '../lib/wait';

const execFileP = promisify(execFile);
const services = ensureServices();
const docker = dockerClient({ dockerSocket: services.dockerSocket });
const SERIAL = `logs-e2e-${process.pid}`;
const APP = 'printer';
const WAIT_MS = 90_000; // a bound so a broken run ends, not a performance limit
const FIRST = 200;

/**
 * The app: prints "line 1" … "line FIRST" at start; then each time /tmp/req appears ("COUNT HEX")
 * COUNT more lines, numbered on from the last, each with HEX random hex digits after the number
 * (incompressible), and removes /tmp/req when done. The count lives in the shell, so it goes on
 * across restarts of zedbox (the container is adopted, not restarted).
 */
const PRINTER = [
  'trap "exit 0" TERM',
  'i=0',
  `go() { awk -v a=$((i+1)) -v b=$((i+$1)) -v h=$2 'BEGIN{srand(); for(k=a;k<=b;k++){ s=""; for(j=0;j<h;j+=4) s=s sprintf("%04x", int(rand()*65536));` +
    ` if (h>0) print "line " k " " substr(s,1,h); else print "line " k }}'; i=$((i+$1)); }`,
  `go ${FIRST} 0`,
  'while :; do if [ -e /tmp/req ]; then read n h < /tmp/req; go $n $h; rm -f /tmp/req; fi; usleep 100000; done',
].join('\n');

/** One record of `zedctl logs --json`: a line (with its seq), a drop marker, a missing marker or a late batch. */
interface Shown {
  seq?: number; source?: string; app?: string; level?: string; msg?: string;
  dropped?: { lines: number; batches: number; reason: string };
  missing?: { from: number; to: number };
  late?: number;
}

const LINE = /^line (\d+)(?: [0-9a-f]+)?$/;

function parseShown(text: string): Shown[] {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Shown);
}

/** The app's line numbers, in the order shown. */
function numbers(shown: Shown[]): number[] {
  return shown.filter((s) => s.app === APP && s.msg !== undefined).map((s) => Number(LINE.exec(s.msg!)?.[1] ?? NaN));
}

/** "1-700" when the numbers are 1..700 each once in order; otherwise the runs show the gap or the repeat. */
function runs(nums: number[]): string {
  const out: string[] = [];
  let from = nums[0];
  for (let i = 1; i <= nums.length; i++) {
    if (i < nums.length && nums[i] === nums[i - 1]! + 1) continue;
    out.push(from === nums[i - 1] ? `${from}` : `${from}-${nums[i - 1]}`);
    from = nums[i];
  }
  return out.length > 12 ? `${out.slice(0, 12).join(',')},… (${out.length} runs)` : out.join(',');
}

/** `zedctl logs --follow --json` kept running through the whole test, as an operator would watch. */
class Follower {
  readonly shown: Shown[] = [];
  private parsed = 0;
  readonly proc: Proc;

  constructor(stateDir: string) {
    this.proc = start(ZEDBOX, ['zedctl', 'logs', SERIAL, '--follow', '--json', '--state', stateDir]);
  }

  /** The highest app line number printed so far. */
  lastLine(): number {
    for (; this.parsed < this.proc.lines.length; this.parsed++) {
      const l = this.proc.lines[this.parsed]!;
      if (l.startsWith('{')) this.shown.push(JSON.parse(l) as Shown);
    }
    return Math.max(0, ...numbers(this.shown));
  }

  async stop(): Promise<void> {
    if (this.proc.child.exitCode === null && this.proc.child.signalCode === null) this.proc.child.kill('SIGTERM');
    await this.proc.exited;
  }
}

t.test('an app\'s output reaches the controller through outages, the quota and a restart of zedbox', async (t) => {
  const ctl = new Controller();
  t.teardown(() => ctl.cleanup());
  await ctl.start();
  const prov = await ctl.addDevice(SERIAL);
  const device = new Device();
  t.teardown(() => device.cleanup());
  fs.writeFileSync(path.join(device.dirs.config, 'controller.json'), JSON.stringify(prov), { mode: 0o600 });
  await device.start();
  await ctl.waitFor(SERIAL, (v) => v.record.state === 'onboarded' && v.status?.state === 'online', 'device onboarded and online');

  const cfg = new ConfigBuilder(`http://${services.registry}`).set(APP, { image: services.baseImage, port: await freePort(), command: ['sh', '-c', PRINTER] });
  const appId = cfg.appId(APP);
  const follower = new Follower(ctl.stateDir);
  t.teardown(() => follower.stop());

  const logs = async (...args: string[]): Promise<Shown[]> => parseShown((await ctl.zedctl(['logs', SERIAL, '--json', ...args])).out);
  const untilShown = (n: number, what: string): Promise<void> => waitUntil(() => follower.lastLine() >= n, `${what}: line ${n} shown by zedctl logs --follow`, WAIT_MS)
    .catch((err: Error) => { throw new Error(`${err.message}\ndevice output:\n${device.tail(20)}\ncontroller output:\n${ctl.lines.slice(-10).join('\n')}`); });
  /** Asks the app for `count` more lines and returns when it has printed them. */
  const print = async (count: number, hex = 0): Promise<void> => {
    const [c] = await docker.listContainers({ filters: { label: [`${LABEL_APP}=${appId}`, `${LABEL_INSTANCE}=${device.instance}`] } });
    if (!c) throw new Error(`no running container of ${APP}`);
    await execFileP('docker', ['exec', c.Id, 'sh', '-c', `echo "${count} ${hex}" > /tmp/req.new && mv /tmp/req.new /tmp/req && while [ -e /tmp/req ]; do usleep 50000; done`],
      { timeout: WAIT_MS });
  };
  /** True when a closed batch in the device's disk queue holds this text (the lines are queued on the device). */
  const queued = (text: string): boolean => {
    const dir = path.join(device.dirs.persist, 'logmanager', 'queue');
    return fs.readdirSync(dir).filter((f) => f.endsWith('.batch')).some((f) => {
      try {
        const bytes = fs.readFileSync(path.join(dir, f));
        return gunzipSync(bytes.subarray(bytes.indexOf(10) + 1)).includes(text);
      } catch {
        return false; // acknowledged and deleted meanwhile
      }
    });
  };

  await t.test('an app\'s output arrives at the controller, in order, with the app\'s name; agents\' lines too', async (t) => {
    await ctl.setConfig(SERIAL, cfg.build());
    await ctl.waitFor(SERIAL, (v) => v.apps.some((a) => a.id === appId && a.state === 'RUNNING'), `${APP} RUNNING`, WAIT_MS);
    await untilShown(FIRST, 'the first lines');
    const text = (await ctl.zedctl(['logs', SERIAL, '--app', APP])).out.trimEnd().split('\n');
    t.equal(text.length, FIRST, `zedctl logs --app ${APP} shows ${FIRST} lines`);
    t.match(text[0], new RegExp(`^\\S+ app/${APP} INFO line 1$`), 'each with its time, the app\'s name and level');
    t.equal(runs(numbers(await logs('--app', APP))), `1-${FIRST}`, 'each once, in order');
    const agents = (await ctl.zedctl(['logs', SERIAL, '--source', 'zedagent'])).out;
    t.match(agents, / zedagent INFO device config applied /, 'zedagent\'s own lines are there too');
  });

  await t.test('the controller away, under the quota: every line arrives once, in order, after it is back', async (t) => {
    await ctl.stop();
    await print(500);
    t.equal(follower.lastLine(), FIRST, 'nothing new is stored while the controller is away');
    await ctl.start();
    await untilShown(FIRST + 500, 'the lines printed while the controller was away');
    const shown = await logs('--app', APP);
    t.equal(runs(numbers(shown)), `1-${FIRST + 500}`, 'each once, in order');
    t.same(shown.filter((s) => s.dropped || s.missing), [], 'nothing dropped or missing');
  });

  await t.test('zedbox restarted with lines queued: each arrives once', async (t) => {
    await ctl.stop();
    await print(300);
    const last = FIRST + 800;
    await waitUntil(() => queued(`"msg":"line ${last}"`), `line ${last} queued on the device`, WAIT_MS);
    t.same(await device.stop(), { code: 0, signal: null }, 'zedbox stops cleanly with lines queued');
    await device.start();
    await ctl.start();
    await untilShown(last, 'the lines queued across the restart');
    const shown = await logs('--app', APP);
    t.equal(runs(numbers(shown)), `1-${last}`, 'each once, in order');
    t.same(shown.filter((s) => s.dropped || s.missing), [], 'nothing dropped or missing');
  });

  await t.test('over the quota: the lines kept and the lines counted as dropped add up exactly to the lines printed', async (t) => {
    const quiet = { 'log.queue.max.mib': '1', 'debug.default.remote.loglevel': 'none' };
    const seq = await ctl.setConfig(SERIAL, cfg.build({ configItems: quiet }));
    await ctl.waitFor(SERIAL, (v) => v.config?.appliedSeq === seq, `config ${seq} applied`, WAIT_MS);
    // A marker line: once it is stored, so is every line logmanager took before it (batches keep arrival order),
    // and from now on agents send nothing: only the app's lines are queued.
    let before = FIRST + 800;
    await print(1);
    before += 1;
    await untilShown(before, 'the marker line');
    const seqBefore = Math.max(...(await logs()).map((s) => s.seq ?? 0));
    const status = device.watch(LogManagerStatusCollection);
    const droppedBefore = status.get('global')?.droppedLines ?? 0;

    await ctl.stop();
    const n = 2000;
    await print(n, 3000); // ~1.7 KB a line compressed: ~3.3 MiB, over the 1 MiB quota three times
    const last = before + n;
    await waitUntil(() => queued(`"msg":"line ${last} `), `line ${last} queued on the device`, WAIT_MS);
    await ctl.start();
    await untilShown(last, 'the newest line, kept whatever the quota');

    const after = (await logs()).filter((s) => (s.seq ?? Infinity) > seqBefore);
    t.same(after.filter((s) => s.source !== undefined && s.source !== 'app'), [], 'no agent line was sent (level none)');
    const shown = (await logs('--app', APP)).filter((s) => (s.seq ?? Infinity) > seqBefore);
    const kept = numbers(shown);
    const drops = shown.filter((s) => s.dropped).map((s) => s.dropped!);
    const dropped = drops.reduce((sum, d) => sum + d.lines, 0);
    t.ok(dropped > 0, `lines were dropped (${dropped} in ${drops.length} marker(s))`);
    t.equal(kept.length + dropped, n, `${kept.length} kept + ${dropped} counted as dropped = the ${n} printed`);
    t.ok(kept.every((k, i) => k > before && k <= last && (i === 0 || k > kept[i - 1]!)), `the kept lines are in order, none repeated (${runs(kept)})`);
    t.equal(kept.at(-1), last, 'the newest line is kept');
    t.same(shown.filter((s) => s.missing), [], 'no batch missing that a drop does not explain');
    t.match(drops[0]?.reason, /quota/, `the reason says so: ${drops[0]?.reason}`);
    const text = (await ctl.zedctl(['logs', SERIAL, '--app', APP])).out;
    t.match(text, /\n-- \d+ lines in \d+ batch(es)? dropped on the device \(log queue over its quota \(1 MiB\)/, 'zedctl logs shows the drop at its place');
    await waitUntil(() => (status.get('global')?.droppedLines ?? 0) - droppedBefore === dropped, 'the device counts the same drop', WAIT_MS)
      .then(() => t.pass('the device\'s LogManagerStatus counts the same lines dropped'),
        () => t.fail(`the device counts ${(status.get('global')?.droppedLines ?? 0) - droppedBefore} lines dropped, the controller shows ${dropped}`));
    // The operator who followed the logs all along saw the same: every line, each drop, nothing late or missing.
    const all = await logs();
    const marks = (xs: Shown[]): Shown[] => xs.filter((s) => s.dropped || s.missing || s.late !== undefined);
    follower.lastLine();
    t.equal(runs(numbers(follower.shown)), runs(numbers(all)), 'zedctl logs --follow showed the same app lines');
    t.equal(follower.shown.length, all.length, 'and as many records in all');
    t.same(marks(follower.shown), marks(all), 'and the same drop markers, nothing late or missing');
  });
});
