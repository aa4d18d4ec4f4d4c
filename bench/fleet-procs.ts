// The fleet benchmark's processes: forked children (controller, simulators) asked
// and answered over IPC with bounded waits, a mosquitto_sub that counts what the
// broker delivers, and /proc readings (CPU time, RSS) of any of them by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

export { Child as FleetChild, type Msg } from './procs';

/** The mosquitto_sub observers this file started, killed if the benchmark exits without stopping them. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

// ---- /proc ----

const TICKS_PER_S = 100; // getconf CLK_TCK on Linux x86_64 and arm64

/** User + system CPU seconds a process has used so far (0 once it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is the first, utime the 12th, stime the 13th.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Resident memory now and at its peak, in MB. */
export function rssMb(pid: number): { now: number; peak: number } {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return { now: 0, peak: 0 };
  }
}

/** Busy and total CPU seconds of the whole machine (all cores), from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
  return { busy: (total - idle) / TICKS_PER_S, total: total / TICKS_PER_S };
}

/** The pid of the process whose command line contains `needle` (the broker, found by its config file). */
export function findPid(needle: string): number | undefined {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').includes(needle)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

// ---- the broker-side count: a C subscriber ----

export interface ObserverCounts { info: number; metrics: number; status: number; other: number }

/**
 * mosquitto_sub on every device's "up" subtree, printing one topic per message: what
 * the broker delivers for the same traffic, counted by a client that costs next to nothing.
 */
export class Observer {
  readonly counts: ObserverCounts = { info: 0, metrics: 0, status: 0, other: 0 };
  private readonly proc: ChildProcess;
  private partial = '';
  private stderr = '';

  constructor(o: { port: number; caFile: string; username: string; password: string }) {
    const args = [
      '-h', '127.0.0.1', '-p', String(o.port), '--cafile', o.caFile, '-u', o.username, '-P', o.password,
      '-i', `bench-observer-${process.pid}`, '-q', '1', '-t', 'zedbox/v1/dev/+/up/#', '-F', '%t',
    ];
    this.proc = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.proc);
    this.proc.on('exit', () => live.delete(this.proc));
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-2000)));
    this.proc.stdout!.on('data', (d: Buffer) => {
      const lines = (this.partial + d.toString()).split('\n');
      this.partial = lines.pop() ?? '';
      for (const t of lines) {
        if (t.includes('/up/info/')) this.counts.info++;
        else if (t.endsWith('/up/metrics')) this.counts.metrics++;
        else if (t.endsWith('/up/status')) this.counts.status++;
        else this.counts.other++;
      }
    });
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  get total(): number {
    return this.counts.info + this.counts.metrics + this.counts.status + this.counts.other;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get errors(): string {
    return this.stderr;
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  }
}
