// The host's addresses, routes and rules through iproute2's `ip`: each call is
// idempotent (adding what is there or removing what is gone succeeds), so a
// reconcile can be repeated after a crash at any point.
import { execFile } from 'node:child_process';

/** Policy-routing tables of management ports are 500 + the interface's index. */
export const PORT_TABLE_BASE = 500;
/** Rules sending traffic from a port's address to its table come before the main table (32766). */
export const RULE_PRIORITY = 10_000;

export interface RouteSpec {
  table: 'main' | number;
  /** CIDR or "default". */
  dst: string;
  via?: string;
  dev: string;
  /** Preferred source address (the port's own). */
  src?: string;
  /** static or dhcp for nim's; a replaced host route keeps its own (boot when ip shows none). */
  proto: string;
  /** "link" for a connected route (no gateway). */
  scope?: 'link';
}

export interface RuleSpec {
  from: string;
  table: number;
  priority: number;
}

export class IpError extends Error {
  override name = 'IpError';
  constructor(readonly args: readonly string[], readonly stderr: string) {
    super(`ip ${args.join(' ')}: ${stderr.trim() || 'failed'}`);
  }
}

/** Runs `ip` with arguments; resolves with stdout. */
export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args as string[], { timeout: 10_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new IpError(args, stderr || err.message));
      else resolve(stdout);
    });
  });
}

/** `ip -j ...` parsed (empty output is an empty list). */
export async function ipJson<T>(args: readonly string[]): Promise<T[]> {
  const out = (await ip(['-j', ...args])).trim();
  return out ? (JSON.parse(out) as T[]) : [];
}

// What the kernel says when the thing to remove is already gone.
const GONE = /No such process|Cannot assign requested address|Address not found|FIB table does not exist|No such file or directory|Cannot find device|does not exist/i;
// What it says when the thing to add is already there.
const THERE = /File exists/i;

async function tolerate(args: string[], ok: RegExp): Promise<void> {
  try {
    await ip(args);
  } catch (err) {
    if (err instanceof IpError && ok.test(err.stderr)) return;
    throw err;
  }
}

const tableArgs = (t: 'main' | number): string[] => ['table', String(t)];

function routeArgs(r: RouteSpec): string[] {
  return [
    r.dst, ...(r.via ? ['via', r.via] : []), 'dev', r.dev, ...tableArgs(r.table), 'proto', r.proto,
    ...(r.scope ? ['scope', r.scope] : []), ...(r.src ? ['src', r.src] : []),
  ];
}

export const linkDriver = {
  addrReplace: (ifName: string, cidr: string): Promise<string> => ip(['addr', 'replace', cidr, 'dev', ifName]),
  addrDel: (ifName: string, cidr: string): Promise<void> => tolerate(['addr', 'del', cidr, 'dev', ifName], GONE),
  linkUp: (ifName: string): Promise<string> => ip(['link', 'set', 'dev', ifName, 'up']),
  linkDown: (ifName: string): Promise<void> => tolerate(['link', 'set', 'dev', ifName, 'down'], GONE),
  linkMtu: (ifName: string, mtu: number): Promise<void> => tolerate(['link', 'set', 'dev', ifName, 'mtu', String(mtu)], GONE),
  routeReplace: (r: RouteSpec): Promise<string> => ip(['route', 'replace', ...routeArgs(r)]),
  /** Removes exactly this route (gateway and device included), not another one to the same place. */
  routeDel: (r: RouteSpec): Promise<void> => tolerate(['route', 'del', r.dst, ...(r.via ? ['via', r.via] : []), 'dev', r.dev, ...tableArgs(r.table)], GONE),
  ruleAdd: (r: RuleSpec): Promise<void> => tolerate(['rule', 'add', 'from', r.from, 'lookup', String(r.table), 'priority', String(r.priority)], THERE),
  ruleDel: (r: RuleSpec): Promise<void> => tolerate(['rule', 'del', 'from', r.from, 'lookup', String(r.table), 'priority', String(r.priority)], GONE),
};
export type LinkDriver = typeof linkDriver;

/** The network a CIDR is in, as a CIDR ("10.1.0.7/24" → "10.1.0.0/24"). */
export function networkOf(cidr: string): string {
  const [addr, bits] = cidr.split('/') as [string, string];
  const n = Number(bits);
  const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  const v = (addr.split('.').reduce((a, o) => a * 256 + Number(o), 0) & mask) >>> 0;
  return `${[v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.')}/${n}`;
}
