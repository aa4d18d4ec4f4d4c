// Section 3: the bundled program with all agents, idle. RSS ~3 s after ready and
// wall time from spawn to its "all agents ready" log line, against bare node.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './procs';

const RUNS = 5;
const SETTLE_MS = 3000;
const READY_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 5000;
const TARGET_RSS_MB = 80;
const TARGET_READY_MS = 1500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
const mark = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

/** VmRSS in kB of a pid and, separately, of all its descendants (in case agents run as children). */
function rssKb(pid: number): { self: number; tree: number } {
  const status = (p: number) => {
    try { return fs.readFileSync(`/proc/${p}/status`, 'utf8'); } catch { return ''; }
  };
  const vmrss = (p: number) => Number(/VmRSS:\s+(\d+)/.exec(status(p))?.[1] ?? 0);
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const ppid = Number(/PPid:\s+(\d+)/.exec(status(Number(d)))?.[1]);
    if (ppid) children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
  }
  let tree = 0;
  const walk = (p: number, depth: number): void => {
    tree += vmrss(p);
    if (depth < 10) for (const c of children.get(p) ?? []) walk(c, depth + 1);
  };
  walk(pid, 0);
  return { self: vmrss(pid), tree };
}

function exited(proc: ChildProcess, timeoutMs: number): Promise<string | undefined> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(`${proc.signalCode ?? proc.exitCode}`);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), timeoutMs);
    proc.once('exit', (code, sig) => { clearTimeout(t); resolve(`${sig ?? code}`); });
  });
}

/** Stops with SIGTERM; SIGKILL only if it does not exit in time. */
async function terminate(proc: ChildProcess): Promise<string> {
  const t0 = process.hrtime.bigint();
  proc.kill('SIGTERM');
  const how = await exited(proc, EXIT_TIMEOUT_MS);
  if (how !== undefined) return `exited ${how} ${ms(t0).toFixed(0)} ms after SIGTERM`;
  proc.kill('SIGKILL');
  await exited(proc, 2000);
  return `DID NOT EXIT within ${EXIT_TIMEOUT_MS} ms of SIGTERM (killed)`;
}

interface Run { readyMs: number; selfMs?: number; agents: string; rss: { self: number; tree: number }; stop: string; errors: string[] }

async function runOnce(argv: string[]): Promise<Run> {
  const d = fs.mkdtempSync('/tmp/zbz-');
  for (const sub of ['run', 'persist', 'config']) fs.mkdirSync(path.join(d, sub));
  const args = [...argv.slice(1), 'all', '--run-dir', `${d}/run`, '--persist-dir', `${d}/persist`, '--config-dir', `${d}/config`];
  const t0 = process.hrtime.bigint();
  const proc = spawn(argv[0] as string, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const errors: string[] = [];
  let tail = '';
  try {
    const ready = await new Promise<{ readyMs: number; selfMs?: number; agents: string }>((resolve, reject) => {
      let buf = '';
      const t = setTimeout(() => reject(new Error(`no "all agents ready" within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      proc.once('exit', (code, sig) => reject(new Error(`exited (${sig ?? code}) before ready`)));
      proc.stderr?.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        tail = (tail + chunk.toString()).slice(-2000);
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let o: { msg?: unknown; ms?: unknown; level?: unknown; running?: unknown; elsewhere?: unknown } | undefined;
          try { o = JSON.parse(line); } catch { continue; }
          if (o?.level === 'error' && errors.length < 3) errors.push(line.slice(0, 300));
          if (o?.msg === 'all agents ready') {
            clearTimeout(t);
            const count = (v: unknown) => (Array.isArray(v) ? v.length : '?');
            resolve({ readyMs: ms(t0), selfMs: typeof o.ms === 'number' ? o.ms : undefined, agents: `${count(o.running)} running, ${count(o.elsewhere)} elsewhere` });
          }
        }
      });
    });
    await sleep(SETTLE_MS);
    const rss = rssKb(proc.pid as number);
    return { ...ready, rss, stop: await terminate(proc), errors };
  } catch (err) {
    await terminate(proc);
    throw new Error(`${(err as Error).message}\n      stderr tail: ${tail.trim().split('\n').slice(-5).join('\n      ')}`);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}

/** Median wall time of `node -e 0`, and RSS of an idle `node` after SETTLE_MS. */
async function baselines(): Promise<{ startMs: number; rssKb: number }> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const p = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await exited(p, 10_000);
    times.push(ms(t0));
  }
  const idle = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore' });
  await sleep(SETTLE_MS);
  const rss = rssKb(idle.pid as number).self;
  await terminate(idle);
  return { startMs: median(times), rssKb: rss };
}

/** Output lines; those starting with "=> " are results for the summary. */
export async function benchZedbox(): Promise<string[]> {
  const bin = process.env.ZEDBOX_BIN ?? path.join(ROOT, 'dist', 'zedbox');
  if (!fs.existsSync(bin)) return [`SKIPPED: ${bin} does not exist (run \`make build\` first)`];
  // A native executable runs directly; the bundled script runs under this node.
  const head = Buffer.alloc(4);
  const fd = fs.openSync(bin, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  const argv = head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) ? [bin] : [process.execPath, bin];

  const out: string[] = [`program: ${argv.join(' ')} all ...`];
  const base = await baselines();
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    try {
      const r = await runOnce(argv);
      runs.push(r);
      out.push(
        `run ${i + 1}: ready after ${r.readyMs.toFixed(0)} ms (it says ${r.selfMs ?? '?'} ms; agents ${r.agents})` +
          ` | RSS ${(r.rss.self / 1024).toFixed(1)} MB${r.rss.tree !== r.rss.self ? ` (with children ${(r.rss.tree / 1024).toFixed(1)} MB)` : ''}` +
          ` | ${r.stop}${r.errors.length ? ` | error lines: ${r.errors.join(' / ')}` : ''}`,
      );
    } catch (err) {
      out.push(`run ${i + 1}: FAILED: ${(err as Error).message}`);
      if (i + 1 - runs.length >= 2) break; // broken: do not spend the time budget on it
    }
  }
  if (runs.length === 0) return [...out, '=> zedbox: no successful run'];
  const readyMs = median(runs.map((r) => r.readyMs));
  const rssMb = median(runs.map((r) => r.rss.tree)) / 1024;
  const baseMb = base.rssKb / 1024;
  out.push(`baselines: idle \`node -e setInterval\` RSS ${baseMb.toFixed(1)} MB; \`node -e 0\` wall ${base.startMs.toFixed(0)} ms (median of ${RUNS})`);
  out.push(`=> zedbox RSS ${rssMb.toFixed(1)} MB (idle node ${baseMb.toFixed(1)} MB, ratio ${(rssMb / baseMb).toFixed(2)}x) | target < ${TARGET_RSS_MB} MB ${mark(rssMb < TARGET_RSS_MB)}`);
  out.push(
    `=> zedbox ready ${readyMs.toFixed(0)} ms median of ${runs.length} (node -e 0 ${base.startMs.toFixed(0)} ms, ratio ${(readyMs / base.startMs).toFixed(1)}x)` +
      ` | target < ${TARGET_READY_MS} ms ${mark(readyMs < TARGET_READY_MS)}`,
  );
  const unclean = runs.filter((r) => !r.stop.startsWith('exited')).length;
  if (unclean) out.push(`=> zedbox: ${unclean} of ${runs.length} runs did not exit on SIGTERM`);
  return out;
}
