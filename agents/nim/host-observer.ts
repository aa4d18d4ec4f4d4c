// What the host's network looks like now: links, addresses, routes, rules (from
// `ip -j`) and name servers (resolv.conf). Used for the status in every mode and
// as the "before" of every apply. The parsers are pure; observeHost() runs `ip`.
import { spawn } from 'node:child_process';
import * as readline from 'node:readline';
import { readResolvConf } from './dns-driver';
import { ipJson } from './link-driver';

export interface HostLink {
  ifName: string;
  ifindex: number;
  /** Administratively up (IFF_UP). */
  adminUp: boolean;
  /** Up with a carrier (UP and LOWER_UP). */
  up: boolean;
  mac?: string;
  mtu: number;
  /** The kind of a virtual link (veth, bridge, ifb, ...); absent for a physical one. */
  kind?: string;
  linkType: string;
}

export interface HostAddr {
  ifName: string;
  /** address/prefix */
  cidr: string;
  family: 'inet' | 'inet6';
}

export interface HostRoute {
  /** "main", "local" or a table number. */
  table: string;
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  protocol?: string;
  metric?: number;
}

export interface HostRule {
  priority: number;
  src?: string;
  table: string;
}

export interface HostView {
  links: HostLink[];
  addrs: HostAddr[];
  routes: HostRoute[];
  rules: HostRule[];
  /** resolv.conf */
  dns: string[];
  search: string[];
}

interface IpLink { ifindex: number; ifname: string; flags?: string[]; mtu?: number; address?: string; link_type?: string; linkinfo?: { info_kind?: string } }
interface IpAddr { ifname: string; addr_info?: { family: string; local: string; prefixlen: number }[] }
interface IpRoute { dst: string; gateway?: string; dev?: string; table?: string; prefsrc?: string; protocol?: string; metric?: number }
interface IpRule { priority: number; src?: string; srclen?: number; table?: string }

export function parseLinks(raw: readonly IpLink[]): HostLink[] {
  return raw.map((l) => {
    const flags = l.flags ?? [];
    return {
      ifName: l.ifname,
      ifindex: l.ifindex,
      adminUp: flags.includes('UP'),
      up: flags.includes('UP') && flags.includes('LOWER_UP'),
      ...(l.address && l.link_type === 'ether' ? { mac: l.address } : {}),
      mtu: l.mtu ?? 0,
      ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}),
      linkType: l.link_type ?? 'unknown',
    };
  });
}

export function parseAddrs(raw: readonly IpAddr[]): HostAddr[] {
  return raw.flatMap((l) => (l.addr_info ?? [])
    .filter((a) => a.family === 'inet' || a.family === 'inet6')
    .map((a) => ({ ifName: l.ifname, cidr: `${a.local}/${a.prefixlen}`, family: a.family as 'inet' | 'inet6' })));
}

export function parseRoutes(raw: readonly IpRoute[]): HostRoute[] {
  return raw.map((r) => ({
    table: r.table ?? 'main', dst: r.dst,
    ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.dev ? { dev: r.dev } : {}),
    ...(r.prefsrc ? { prefsrc: r.prefsrc } : {}), ...(r.protocol ? { protocol: r.protocol } : {}),
    ...(r.metric ? { metric: r.metric } : {}),
  }));
}

export function parseRules(raw: readonly IpRule[]): HostRule[] {
  return raw.map((r) => ({ priority: r.priority, ...(r.src && r.src !== 'all' ? { src: r.src } : {}), table: r.table ?? 'main' }));
}

// Names of links that are the host's plumbing, not its ports: Docker's and libvirt's bridges and their veths.
const PLUMBING = /^(lo|docker\d*|veth.*|br-.*|virbr.*|vnet\d+|tap.*|tun.*)$/;

/**
 * A port of the device: an ethernet link that is not loopback or plumbing. A veth counts when its
 * name is not veth*: it is the device's cable in a container or in a test's network namespace.
 */
export function isDevicePort(l: HostLink): boolean {
  if (l.linkType !== 'ether' || PLUMBING.test(l.ifName)) return false;
  return l.kind === undefined || l.kind === 'veth';
}

/** Default gateways through a link, in any table (a port's own table included). */
export function gatewaysOf(view: HostView, ifName: string): string[] {
  const out = view.routes.filter((r) => r.dev === ifName && r.dst === 'default' && r.gateway).map((r) => r.gateway!);
  return [...new Set(out)];
}

export async function observeHost(resolvConf: string): Promise<HostView> {
  const [links, addrs, routes4, routes6, rules] = await Promise.all([
    ipJson<IpLink>(['-d', 'link', 'show']),
    ipJson<IpAddr>(['addr', 'show']),
    ipJson<IpRoute>(['-4', 'route', 'show', 'table', 'all']),
    ipJson<IpRoute>(['-6', 'route', 'show', 'default']),
    ipJson<IpRule>(['-4', 'rule', 'show']),
  ]);
  const { servers, search } = readResolvConf(resolvConf);
  return {
    links: parseLinks(links),
    addrs: parseAddrs(addrs),
    routes: [...parseRoutes(routes4), ...parseRoutes(routes6)].filter((r) => r.table !== 'local'),
    rules: parseRules(rules),
    dns: servers,
    search,
  };
}

/**
 * Calls onChange (debounced) whenever a link, address or route changes, from `ip monitor`.
 * Returns a stop function. The monitor is restarted if it exits while wanted.
 */
export function watchHost(onChange: () => void, onError: (err: Error) => void, debounceMs = 200): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  const fire = (): void => {
    if (timer || stopped) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (!stopped) onChange();
    }, debounceMs);
  };
  const startMonitor = (): void => {
    // Through a shell that holds our pipe on its stdin: if this process dies without stopping the
    // monitor (SIGKILL), the pipe closes, `read` returns and the monitor is killed with the shell.
    child = spawn('sh', ['-c', 'ip monitor link address route & trap \'kill $! 2>/dev/null\' EXIT; read _ || true'], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.on('error', (err) => onError(err));
    readline.createInterface({ input: child.stdout! }).on('line', fire);
    child.on('exit', () => {
      if (!stopped) setTimeout(() => { if (!stopped) startMonitor(); }, 1000).unref();
    });
  };
  startMonitor();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    child?.stdin?.end(); // the shell's read returns and its EXIT trap stops the monitor
  };
}
