// What the machine is and how busy it is, for device info and metrics: the
// systeminformation calls (and /proc and /sys where it falls short). Every call
// is bounded: a reading that fails or hangs is reported missing, so a stuck
// command never stalls the metrics tick. Never `si.versions()`: it spawns many
// binaries and took 809 ms in the VM.
import { readFile, readdir } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as si from 'systeminformation';
import type { DeviceHardware, DeviceOs } from '../../api/info';
import { storageTotalBytes, type FilesystemReading } from './filesystems';

export type { FilesystemReading } from './filesystems';

/** The longest one reading may take before it is reported missing. */
export const READ_TIMEOUT_MS = 5000;
const SYS_NET = '/sys/class/net';


/** The kernel's counters of one interface (/sys/class/net/<name>/statistics). */
export interface NetworkCounters {
  name: string;
  /** /sys/class/net/<name>/operstate: up, down, unknown (lo), dormant, … */
  operstate?: string;
  rxBytes: number; txBytes: number;
  rxPackets: number; txPackets: number;
  rxErrors: number; txErrors: number;
  rxDrops: number; txDrops: number;
}

export interface HardwareSnapshot {
  hostname: string;
  machineBootTime?: string;
  hardware: DeviceHardware;
  os: DeviceOs;
  /** Readings that failed or timed out (their fields fall back to Node's os module, or are absent). */
  missing: string[];
  /** Why, for the log. */
  errors: string[];
}

export interface DeviceSample {
  time: string;
  uptimeSeconds?: number;
  /** All cores, since the previous sample. */
  cpuPercent?: number;
  loadAverage?: [number, number, number];
  memory?: { totalBytes: number; availableBytes: number };
  filesystems?: FilesystemReading[];
  network?: NetworkCounters[];
  /** Readings that failed or timed out this time. */
  missing: string[];
  /** Why, for the log (not reported). */
  errors: string[];
}

type Reading<T> = { ok: true; value: T } | { ok: false; error: string };

/** The call's value, or why not (failed, or still running after ms; it is left to finish on its own). */
export function bounded<T>(call: () => Promise<T>, ms: number, what: string): Promise<Reading<T>> {
  return new Promise((resolve) => {
    // Not unref'd: whoever awaits the reading must get an answer even if nothing else is pending.
    const timer = setTimeout(() => resolve({ ok: false, error: `${what} took longer than ${ms} ms` }), ms);
    let p: Promise<T>;
    try {
      p = call();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (value) => { clearTimeout(timer); resolve({ ok: true, value }); },
      (err: unknown) => { clearTimeout(timer); resolve({ ok: false, error: `${what} failed: ${(err as Error)?.message ?? String(err)}` }); },
    );
  });
}

const nonEmpty = (s: string | undefined | null): string | undefined => {
  const t = (s ?? '').trim();
  return t && t !== '-' && t !== 'Default string' ? t : undefined;
};

/** What the machine is: read once at start (about 100 ms here, most of it osInfo and system). */
export async function readHardware(opts: { timeoutMs?: number } = {}): Promise<HardwareSnapshot> {
  const ms = opts.timeoutMs ?? READ_TIMEOUT_MS;
  const [system, cpu, mem, osInfo, fsSize, bootTime] = await Promise.all([
    bounded(() => si.system(), ms, 'system'),
    bounded(() => si.cpu(), ms, 'cpu'),
    bounded(() => si.mem(), ms, 'mem'),
    bounded(() => si.osInfo(), ms, 'osInfo'),
    bounded(() => si.fsSize(), ms, 'fsSize'),
    bounded(readMachineBootTime, ms, 'bootTime'),
  ]);
  const failed = Object.entries({ system, cpu, mem, osInfo, fsSize, bootTime }).filter(([, r]) => !r.ok);
  const missing = failed.map(([k]) => k);
  const errors = failed.map(([, r]) => (r as { error: string }).error);
  const sys = system.ok ? system.value : undefined;
  const c = cpu.ok ? cpu.value : undefined;
  const o = osInfo.ok ? osInfo.value : undefined;
  // si's virtual flag misses KVM guests like this VM; every mainstream hypervisor sets the CPUID hypervisor bit.
  const virtual = sys?.virtual === true || (c ? /\bhypervisor\b/.test(c.flags) : undefined);
  const brand = c ? [nonEmpty(c.manufacturer), nonEmpty(c.brand)].filter(Boolean).join(' ') : '';
  const hardware: DeviceHardware = {
    ...(nonEmpty(sys?.manufacturer) ? { manufacturer: nonEmpty(sys?.manufacturer) } : {}),
    ...(nonEmpty(sys?.model) ? { model: nonEmpty(sys?.model) } : {}),
    ...(virtual !== undefined ? { virtual } : {}),
    cpu: { ...(brand ? { brand } : {}), cores: c?.cores || os.cpus().length || 1, arch: os.arch() },
    memoryTotalBytes: mem.ok ? mem.value.total : os.totalmem(),
  };
  const storage = fsSize.ok ? storageTotalBytes(fsSize.value.map(filesystemReading)) : undefined;
  if (storage !== undefined) hardware.storageTotalBytes = storage;
  const osPart: DeviceOs = {
    ...(nonEmpty(o?.distro) ? { distro: nonEmpty(o?.distro) } : {}),
    ...(nonEmpty(o?.release) ? { release: nonEmpty(o?.release) } : {}),
    kernel: nonEmpty(o?.kernel) ?? os.release(),
    arch: nonEmpty(o?.arch) ?? os.arch(),
  };
  return {
    hostname: os.hostname(),
    ...(bootTime.ok ? { machineBootTime: bootTime.value } : {}),
    hardware, os: osPart, missing, errors,
  };
}

/** The kernel's boot time (btime in /proc/stat): whole seconds, the same on every read, unlike now − uptime. */
async function readMachineBootTime(): Promise<string> {
  const m = /^btime (\d+)$/m.exec(await readFile('/proc/stat', 'utf8'));
  const secs = m ? Number(m[1]) : Math.round(Date.now() / 1000 - os.uptime());
  return new Date(secs * 1000).toISOString();
}

function filesystemReading(f: si.Systeminformation.FsSizeData): FilesystemReading {
  return {
    source: f.fs, ...(f.type ? { type: f.type } : {}), mount: f.mount,
    sizeBytes: f.size, usedBytes: f.used, ...(typeof f.available === 'number' ? { availableBytes: f.available } : {}),
  };
}

const COUNTER_FILES = {
  rxBytes: 'rx_bytes', txBytes: 'tx_bytes', rxPackets: 'rx_packets', txPackets: 'tx_packets',
  rxErrors: 'rx_errors', txErrors: 'tx_errors', rxDrops: 'rx_dropped', txDrops: 'tx_dropped',
} as const;

/**
 * Every interface's counters, down ones included (systeminformation goes through
 * os.networkInterfaces(), which leaves out interfaces without an address).
 */
export async function readNetworkCounters(dir = SYS_NET): Promise<NetworkCounters[]> {
  const names = (await readdir(dir)).sort();
  const read = async (name: string): Promise<NetworkCounters | undefined> => {
    try {
      const values = await Promise.all(Object.values(COUNTER_FILES).map((f) => readFile(path.join(dir, name, 'statistics', f), 'utf8')));
      const operstate = await readFile(path.join(dir, name, 'operstate'), 'utf8').then((s) => s.trim(), () => undefined);
      const counters = Object.fromEntries(Object.keys(COUNTER_FILES).map((k, i) => [k, Number(values[i]!.trim()) || 0]));
      return { name, ...(operstate ? { operstate } : {}), ...counters } as NetworkCounters;
    } catch {
      return undefined; // went away while we read it, or not an interface directory
    }
  };
  return (await Promise.all(names.map(read))).filter((n): n is NetworkCounters => n !== undefined);
}

/**
 * Samples for the metrics tick. CPU percent comes from currentLoad, which measures since its
 * previous call; its first call waits 500 ms to have a baseline, so the constructor makes that
 * call and the first sample() waits for it (not for a fresh 500 ms). A reading whose previous call
 * is still hanging is not started again: it is reported missing until that call ends.
 */
export class MetricsSampler {
  private readonly timeoutMs: number;
  private readonly sysNetDir: string;
  private readonly primed: Promise<unknown>;
  private readonly running = new Set<string>();

  /** sysNetDir: where interfaces are listed (/sys/class/net; another folder in tests). */
  constructor(opts: { timeoutMs?: number; sysNetDir?: string } = {}) {
    this.timeoutMs = opts.timeoutMs ?? READ_TIMEOUT_MS;
    this.sysNetDir = opts.sysNetDir ?? SYS_NET;
    this.primed = si.currentLoad().catch(() => undefined);
  }

  /** Never throws: what could not be read is absent, and named in missing. */
  async sample(): Promise<DeviceSample> {
    const [cpu, mem, fsSize, net] = await Promise.all([
      this.read('cpu', async () => { await this.primed; return (await si.currentLoad()).currentLoad; }),
      this.read('memory', () => si.mem()),
      this.read('filesystems', () => si.fsSize()),
      this.read('network', () => readNetworkCounters(this.sysNetDir)),
    ]);
    const failed = Object.entries({ cpu, memory: mem, filesystems: fsSize, network: net }).filter(([, r]) => !r.ok);
    const missing = failed.map(([k]) => k);
    const errors = failed.map(([, r]) => (r as { error: string }).error);
    const out: DeviceSample = { time: new Date().toISOString(), uptimeSeconds: Math.round(os.uptime()), missing, errors };
    const load = os.loadavg();
    out.loadAverage = [load[0] ?? 0, load[1] ?? 0, load[2] ?? 0];
    if (cpu.ok && Number.isFinite(cpu.value)) out.cpuPercent = cpu.value;
    else if (cpu.ok) { missing.push('cpu'); errors.push(`cpu: currentLoad gave ${String(cpu.value)}`); }
    if (mem.ok) out.memory = { totalBytes: mem.value.total, availableBytes: mem.value.available };
    if (fsSize.ok) out.filesystems = fsSize.value.map(filesystemReading);
    if (net.ok) out.network = net.value;
    return out;
  }

  private read<T>(name: string, call: () => Promise<T>): Promise<Reading<T>> {
    if (this.running.has(name)) return Promise.resolve({ ok: false, error: `${name}: the previous reading has not finished` });
    this.running.add(name);
    return bounded(() => {
      const p = Promise.resolve().then(call);
      // Cleared when the call itself ends, not at the timeout: a hung call is not piled on.
      p.then(() => this.running.delete(name), () => this.running.delete(name));
      return p;
    }, this.timeoutMs, name);
  }
}
