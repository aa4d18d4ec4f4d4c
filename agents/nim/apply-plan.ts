// What the host must hold for a port configuration: links up, addresses, routes
// (source-based policy routing per management port, one default route in the main
// table), DHCP clients, name servers, DHCP servers. Pure: the applier compares it
// with what nim recorded and what the host shows.
import type { DhcpServerConfig, NetworkPortConfig } from '../../pubsub/collections/network';
import type { HostLink } from './host-observer';
import { PORT_TABLE_BASE, RULE_PRIORITY, networkOf, type RouteSpec, type RuleSpec } from './link-driver';
import { leaseExpiresAt, type Lease } from './udhcpc-driver';

export interface AddrItem {
  ifName: string;
  cidr: string;
}

/** A port that serves DHCP to a local network (handed to the LocalNetworks hook). */
export interface LocalNetworkPort {
  ifName: string;
  /** The port's own address, a CIDR. */
  address: string;
  config: DhcpServerConfig;
}

export interface Desired {
  links: { ifName: string; mtu?: number }[];
  addresses: AddrItem[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  dhcpClients: string[];
  /** undefined: the configuration names no name server (the file is left alone). */
  dns?: { servers: string[]; search: string[] };
  localNetworks: LocalNetworkPort[];
}

export const NOTHING: Desired = { links: [], addresses: [], routes: [], rules: [], dhcpClients: [], localNetworks: [] };

export const addrKey = (a: AddrItem): string => `${a.ifName} ${a.cidr}`;
export const routeKey = (r: RouteSpec): string => `${r.table} ${r.dst} ${r.via ?? '-'} ${r.dev}`;
export const ruleKey = (r: RuleSpec): string => `${r.from} ${r.table} ${r.priority}`;

/** The address and gateway a port has now: its static ones, or its DHCP lease while it lasts. */
export function portAddress(p: NetworkPortConfig, lease: Lease | undefined, now: number): { cidr: string; gateway?: string } | undefined {
  if (p.addressing.type === 'static') return { cidr: p.addressing.address, ...(p.addressing.gateway ? { gateway: p.addressing.gateway } : {}) };
  if (p.addressing.type === 'dhcp' && lease && leaseExpiresAt(lease) > now) {
    return { cidr: `${lease.ip}/${lease.prefix}`, ...(lease.routers[0] ? { gateway: lease.routers[0] } : {}) };
  }
  return undefined;
}

/** Management ports cheapest first (stable: configuration order among equals). */
export function byCost(ports: readonly NetworkPortConfig[]): NetworkPortConfig[] {
  return ports.filter((p) => p.management).sort((a, b) => a.cost - b.cost);
}

/**
 * The host state for `ports`. `preferred` is the management port the last test reached the
 * controller through: the main table's default route goes through it; without one, through the
 * cheapest management port with a gateway. Ports whose interface does not exist get nothing yet.
 */
export function desiredState(ports: readonly NetworkPortConfig[] | undefined, leases: ReadonlyMap<string, Lease>, links: readonly HostLink[], now: number, preferred?: string): Desired {
  if (!ports) return NOTHING;
  const d: Desired = { links: [], addresses: [], routes: [], rules: [], dhcpClients: [], localNetworks: [] };
  const servers: string[] = [];
  const search: string[] = [];
  let mainDefault: RouteSpec | undefined;
  const gateways = new Map<string, RouteSpec>();
  for (const p of ports) {
    const link = links.find((l) => l.ifName === p.ifName);
    if (!link) continue;
    d.links.push({ ifName: p.ifName, ...(p.mtu ? { mtu: p.mtu } : {}) });
    if (p.addressing.type === 'dhcp') d.dhcpClients.push(p.ifName);
    const lease = leases.get(p.ifName);
    servers.push(...(p.dns ?? []), ...(p.addressing.type === 'dhcp' && lease ? lease.dns : []));
    if (p.addressing.type === 'dhcp' && lease?.domain) search.push(lease.domain);
    const a = portAddress(p, lease, now);
    if (!a) continue;
    const [ip] = a.cidr.split('/') as [string];
    d.addresses.push({ ifName: p.ifName, cidr: a.cidr });
    if (p.dhcpServer && p.addressing.type === 'static') d.localNetworks.push({ ifName: p.ifName, address: a.cidr, config: p.dhcpServer });
    if (!p.management) continue;
    // Traffic from the port's own address leaves through the port, whatever the main table says:
    // a test bound to the address tests this port.
    const proto = p.addressing.type === 'dhcp' ? 'dhcp' as const : 'static' as const;
    const table = PORT_TABLE_BASE + link.ifindex;
    d.routes.push({ table, dst: networkOf(a.cidr), dev: p.ifName, src: ip, proto, scope: 'link' });
    d.rules.push({ from: ip, table, priority: RULE_PRIORITY });
    if (a.gateway) {
      d.routes.push({ table, dst: 'default', via: a.gateway, dev: p.ifName, proto });
      gateways.set(p.ifName, { table: 'main', dst: 'default', via: a.gateway, dev: p.ifName, proto });
    }
  }
  mainDefault = (preferred ? gateways.get(preferred) : undefined) ?? byCost(ports).map((p) => gateways.get(p.ifName)).find(Boolean);
  if (mainDefault) d.routes.push(mainDefault);
  const uniq = [...new Set(servers)];
  if (uniq.length) d.dns = { servers: uniq, search: [...new Set(search)] };
  return d;
}
