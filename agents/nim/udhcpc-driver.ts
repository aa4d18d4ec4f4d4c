// DHCP clients on nim's DHCP ports: the real udhcpc (busybox's, or `udhcpc` on
// PATH) in the foreground, one per port, with a hook script that changes nothing
// and only prints each lease event for nim to parse. nim applies addresses and
// routes itself, so it alone decides what to remove. A client that exits on its
// own is restarted with backoff; leaving the configuration releases the lease.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { backoffDelay, type BackoffPolicy } from '../../lib/backoff';
import { writeFileAtomicSync } from '../../lib/atomic-file';
import type { Logger } from '../../lib/log';

export interface Lease {
  ip: string;
  prefix: number;
  routers: string[];
  dns: string[];
  domain?: string;
  leaseSeconds: number;
  /** When the lease was bound or renewed (ms since the epoch). */
  boundAt: number;
}

export const HOOK_TAG = 'nim-lease';
const HOOK = `#!/bin/sh
# Written by zedbox nim. udhcpc runs it on every lease event; it changes nothing
# on the host and only prints the lease, which nim reads and applies itself.
printf '${HOOK_TAG}\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$1" "$ip" "$mask" "$subnet" "$router" "$dns" "$lease" "$domain"
`;
const RESTART: BackoffPolicy = { minMs: 1000, maxMs: 30_000, jitter: 0.2 };
/** How long a released client gets to send its release and exit. */
const STOP_GRACE_MS = 3000;

export function leaseExpiresAt(l: Lease): number {
  return l.boundAt + l.leaseSeconds * 1000;
}

function prefixOf(mask: string, subnet: string): number | undefined {
  if (/^\d+$/.test(mask)) return Number(mask);
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(subnet);
  if (!m) return undefined;
  return m.slice(1).reduce((n, o) => n + Number(o).toString(2).replace(/0/g, '').length, 0);
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** A line the hook printed: the event, and the lease for bound and renew. */
export function parseHookLine(line: string, now: number): { event: string; lease?: Lease } | undefined {
  const f = line.split('\t');
  if (f[0] !== HOOK_TAG || f.length < 9) return undefined;
  const [, event, ip, mask, subnet, router, dns, lease, domain] = f as string[] as [string, string, string, string, string, string, string, string, string];
  if (event !== 'bound' && event !== 'renew') return { event };
  const prefix = prefixOf(mask, subnet);
  if (!IPV4.test(ip) || prefix === undefined) return { event: 'malformed' };
  const words = (s: string): string[] => s.split(/\s+/).filter((w) => IPV4.test(w));
  return {
    event,
    lease: {
      ip, prefix, routers: words(router), dns: words(dns),
      ...(domain ? { domain } : {}),
      leaseSeconds: Number(lease) > 0 ? Number(lease) : 3600,
      boundAt: now,
    },
  };
}

export interface DhcpClientsOptions {
  /** Where the hook script goes (<run>/nim/udhcpc-hook.sh). */
  hookFile: string;
  log: Logger;
  /** Every event of a client: a lease for bound/renew, undefined when it is gone (deconfig, nak). */
  onEvent(ifName: string, event: string, lease: Lease | undefined): void;
}

interface Client {
  child?: ChildProcess;
  failures: number;
  timer?: NodeJS.Timeout;
  wanted: boolean;
  requestIp?: string;
  exited?: Promise<void>;
}

export class DhcpClients {
  private readonly clients = new Map<string, Client>();
  private readonly command: string[];

  constructor(private readonly opts: DhcpClientsOptions) {
    this.command = onPath('udhcpc') ? ['udhcpc'] : ['busybox', 'udhcpc'];
    fs.mkdirSync(path.dirname(opts.hookFile), { recursive: true });
    writeFileAtomicSync(opts.hookFile, HOOK);
    fs.chmodSync(opts.hookFile, 0o755);
  }

  /** Runs a client on the port unless one runs; requestIp asks for the address it had. */
  ensure(ifName: string, requestIp?: string): void {
    const c = this.clients.get(ifName);
    if (c?.wanted) return;
    const client: Client = { failures: 0, wanted: true, ...(requestIp ? { requestIp } : {}) };
    this.clients.set(ifName, client);
    this.spawn(ifName, client);
  }

  running(): string[] {
    return [...this.clients.entries()].filter(([, c]) => c.wanted).map(([n]) => n);
  }

  pid(ifName: string): number | undefined {
    return this.clients.get(ifName)?.child?.pid;
  }

  /** Stops the client; release sends a DHCP release first (the port left the configuration). */
  async stop(ifName: string, release: boolean): Promise<void> {
    const c = this.clients.get(ifName);
    if (!c) return;
    c.wanted = false;
    this.clients.delete(ifName);
    if (c.timer) clearTimeout(c.timer);
    const child = c.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // udhcpc -R releases on SIGTERM; SIGKILL leaves the lease in place (nim stops, the address stays).
    child.kill(release ? 'SIGTERM' : 'SIGKILL');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([c.exited, new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        // A child that never started has nothing to close: do not wait for it forever.
        setTimeout(resolve, 1000).unref();
      }, STOP_GRACE_MS);
    })]);
    clearTimeout(timer);
  }

  async stopAll(release: boolean): Promise<void> {
    await Promise.all([...this.clients.keys()].map((n) => this.stop(n, release)));
  }

  private spawn(ifName: string, c: Client): void {
    const [cmd, ...pre] = this.command as [string, ...string[]];
    // -t/-T/-A: discover 5 times 2 s apart, then pause 5 s, forever (the default pause is 20 s).
    const args = [...pre, '-f', '-R', '-i', ifName, '-s', this.opts.hookFile, '-t', '5', '-T', '2', '-A', '5', ...(c.requestIp ? ['-r', c.requestIp] : [])];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    c.child = child;
    let first = true;
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const ev = parseHookLine(line, Date.now());
      if (!ev || !c.wanted) return;
      // The deconfig udhcpc starts with is not news: a lease kept from before stays until it is replaced or ends.
      if (first && ev.event === 'deconfig') return void (first = false);
      first = false;
      if (ev.event === 'bound' || ev.event === 'renew') c.failures = 0;
      this.opts.log.debug('DHCP client event', { port: ifName, event: ev.event, lease: ev.lease });
      if (ev.event === 'leasefail' || ev.event === 'malformed') return;
      this.opts.onEvent(ifName, ev.event, ev.lease);
    });
    readline.createInterface({ input: child.stderr! }).on('line', (line) => this.opts.log.debug(line, { port: ifName }));
    c.exited = new Promise((resolve) => {
      child.on('error', (err) => this.opts.log.error('cannot run the DHCP client', { port: ifName, command: cmd, error: err.message }));
      child.on('close', (code, signal) => {
        resolve();
        if (!c.wanted || this.clients.get(ifName) !== c) return;
        const delay = backoffDelay(RESTART, ++c.failures);
        this.opts.log.warn('DHCP client exited; restarting', { port: ifName, code, signal, inMs: delay });
        c.timer = setTimeout(() => { if (c.wanted) this.spawn(ifName, c); }, delay);
      });
    });
  }
}

/** Kills a client a previous run of nim left (it was killed itself); only if it runs our hook. */
export function killStaleClient(pid: number, hookFile: string): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.split('\0').includes(hookFile)) return false;
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      fs.accessSync(path.join(d, name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
