// The device's own network: which ports it manages and how (EVE's DevicePortConfig),
// the ordered list nim chooses from (DevicePortConfigList, persistent), and what nim
// found and applied (DeviceNetworkStatus) for zedagent, diag and ledmanager.
import { Type, type Static } from '@sinclair/typebox';
import { defineCollection } from '../catalog';
import { Time } from './common';

const strict = { additionalProperties: false } as const;
const IPV4 = '^(25[0-5]|2[0-4]\\d|1?\\d?\\d)(\\.(25[0-5]|2[0-4]\\d|1?\\d?\\d)){3}$';
const IPV4_CIDR = '^(25[0-5]|2[0-4]\\d|1?\\d?\\d)(\\.(25[0-5]|2[0-4]\\d|1?\\d?\\d)){3}/([0-9]|[12]\\d|3[0-2])$';
export const Ipv4 = Type.String({ pattern: IPV4 });
export const Ipv4Cidr = Type.String({ pattern: IPV4_CIDR });
/** Linux interface names: at most 15 bytes, no slash or space. */
export const IfName = Type.String({ pattern: '^[A-Za-z0-9_.:@-]{1,15}$' });

export const PortAddressingSchema = Type.Union([
  /** A DHCP client on the port (nim runs it and applies the lease). */
  Type.Object({ type: Type.Literal('dhcp') }, strict),
  /** A fixed address; gateway makes a default route through the port. */
  Type.Object({ type: Type.Literal('static'), address: Ipv4Cidr, gateway: Type.Optional(Ipv4) }, strict),
  /** Link up, no address (a port for apps that bring their own). */
  Type.Object({ type: Type.Literal('none') }, strict),
]);
export type PortAddressing = Static<typeof PortAddressingSchema>;

export const DhcpServerConfigSchema = Type.Object(
  {
    /** First and last address handed out; both inside the port's static subnet. */
    rangeStart: Ipv4,
    rangeEnd: Ipv4,
    leaseSeconds: Type.Integer({ minimum: 60, maximum: 7 * 86400 }),
    /** Router option; absent: the port's own address. */
    gateway: Type.Optional(Ipv4),
    /** DNS option; absent: the port's own address. */
    dns: Type.Optional(Type.Array(Ipv4, { maxItems: 4 })),
    domain: Type.Optional(Type.String({ maxLength: 253 })),
  },
  strict,
);
export type DhcpServerConfig = Static<typeof DhcpServerConfigSchema>;

export const NetworkPortConfigSchema = Type.Object(
  {
    ifName: IfName,
    /** A management port reaches the controller; the others serve local networks. */
    management: Type.Boolean(),
    /** 0 is free, 255 most expensive: management ports are tried cheapest first (EVE's cost). */
    cost: Type.Integer({ minimum: 0, maximum: 255 }),
    addressing: PortAddressingSchema,
    /** Name servers to use through this port (added to any the DHCP lease gives). */
    dns: Type.Optional(Type.Array(Ipv4, { maxItems: 4 })),
    mtu: Type.Optional(Type.Integer({ minimum: 576, maximum: 9216 })),
    /** HTTP proxy (http://host:port) the link to the controller goes through, with CONNECT. */
    proxy: Type.Optional(Type.String({ pattern: '^http://[^\\s/]+:\\d{1,5}/?$' })),
    /** Serve DHCP on this port (a local network; static addressing only). */
    dhcpServer: Type.Optional(DhcpServerConfigSchema),
  },
  strict,
);
export type NetworkPortConfig = Static<typeof NetworkPortConfigSchema>;

/** Where a port configuration came from: the controller, a file on the device, or the built-in last resort. */
export const DpcSource = Type.Union([Type.Literal('zedagent'), Type.Literal('local'), Type.Literal('lastresort')]);
export type DpcSource = Static<typeof DpcSource>;

export const DevicePortConfigSchema = Type.Object(
  {
    key: DpcSource,
    ports: Type.Array(NetworkPortConfigSchema, { maxItems: 32 }),
  },
  strict,
);
export type DevicePortConfig = Static<typeof DevicePortConfigSchema>;

export const DevicePortConfigCollection = defineCollection({
  type: 'DevicePortConfig', owner: 'zedagent', schema: DevicePortConfigSchema, keyOf: (v) => v.key,
  description: 'The port configuration the controller sent, key "zedagent" (absent when it sent none)',
});

/** EVE's DPCState, in words. */
export const DpcStateSchema = Type.Union([
  Type.Literal('none'), Type.Literal('testing'), Type.Literal('success'), Type.Literal('fail'),
  /** Failed the test, but the ports have addresses and DNS. */
  Type.Literal('fail-with-ip-and-dns'),
  /** A named interface does not exist (yet). */
  Type.Literal('intf-wait'),
  /** Waiting for an address (DHCP) or DNS. */
  Type.Literal('ipdns-wait'),
  /** The controller answered with a refusal: the path works, the controller side does not. */
  Type.Literal('remote-wait'),
]);
export type DpcState = Static<typeof DpcStateSchema>;

export const DpcEntrySchema = Type.Composite([
  DevicePortConfigSchema,
  Type.Object({
    /** When nim first saw this port set; newer wins among configurations of the same rank (EVE's TimePriority). */
    timePriority: Time,
    state: DpcStateSchema,
    lastSucceeded: Type.Optional(Time),
    lastFailed: Type.Optional(Time),
    lastError: Type.Optional(Type.String()),
  }),
], strict);
export type DpcEntry = Static<typeof DpcEntrySchema>;

export const DevicePortConfigListSchema = Type.Object(
  {
    /** Index into list of the configuration applied; -1 for none. */
    currentIndex: Type.Integer({ minimum: -1 }),
    /** Highest priority first. */
    list: Type.Array(DpcEntrySchema, { maxItems: 16 }),
  },
  strict,
);
export type DevicePortConfigList = Static<typeof DevicePortConfigListSchema>;

export const DevicePortConfigListCollection = defineCollection({
  type: 'DevicePortConfigList', owner: 'nim', schema: DevicePortConfigListSchema, keyOf: () => 'global', persistent: true,
  description: 'Port configurations by priority with their test results and the one in use, key "global"',
});

export const NetworkPortStatusSchema = Type.Object(
  {
    ifName: Type.String(),
    management: Type.Boolean(),
    cost: Type.Integer({ minimum: 0, maximum: 255 }),
    addressing: Type.Union([Type.Literal('dhcp'), Type.Literal('static'), Type.Literal('none'), Type.Literal('host')]),
    /** The interface exists and its link is up. */
    exists: Type.Boolean(),
    up: Type.Boolean(),
    mac: Type.Optional(Type.String()),
    mtu: Type.Optional(Type.Integer()),
    /** CIDRs, IPv4 and IPv6. */
    addresses: Type.Array(Type.String()),
    gateways: Type.Array(Type.String()),
    dns: Type.Array(Type.String()),
    /** When the DHCP lease on this port ends. */
    leaseExpiresAt: Type.Optional(Time),
    /** The last connectivity test through this port reached the controller's broker. */
    reachesController: Type.Optional(Type.Boolean()),
    testedAt: Type.Optional(Time),
    error: Type.Optional(Type.String()),
    proxy: Type.Optional(Type.String()),
    dhcpServer: Type.Optional(Type.Object({ leases: Type.Integer({ minimum: 0 }), poolSize: Type.Integer({ minimum: 0 }), error: Type.Optional(Type.String()) }, strict)),
  },
  strict,
);
export type NetworkPortStatus = Static<typeof NetworkPortStatusSchema>;

export const DeviceNetworkStatusSchema = Type.Object(
  {
    /** Source of the configuration applied ("host": nothing configured, the host's network is observed). */
    dpcKey: Type.Union([DpcSource, Type.Literal('host')]),
    currentIndex: Type.Integer({ minimum: -1 }),
    state: DpcStateSchema,
    /** A test of some configuration is under way. */
    testing: Type.Boolean(),
    /** The controller's broker as nim tests it (absent without a controller). */
    controller: Type.Optional(Type.Object({
      host: Type.String(),
      port: Type.Integer(),
      reachable: Type.Boolean(),
      via: Type.Optional(Type.String()),
      testedAt: Type.Optional(Time),
      error: Type.Optional(Type.String()),
    }, strict)),
    ports: Type.Array(NetworkPortStatusSchema),
    /** Name servers in use (resolv.conf order). */
    dns: Type.Array(Type.String()),
    errors: Type.Array(Type.String()),
  },
  strict,
);
export type DeviceNetworkStatus = Static<typeof DeviceNetworkStatusSchema>;

export const DeviceNetworkStatusCollection = defineCollection({
  type: 'DeviceNetworkStatus', owner: 'nim', schema: DeviceNetworkStatusSchema, keyOf: () => 'global',
  description: 'The device\'s ports, addresses, routes, DNS and path to the controller as nim applied and tested them, key "global"',
});

/** An address a port can reach anything with: not loopback, not link-local (EVE's CountLocalAddrAnyNoLinkLocal). */
export function isUsableAddress(cidr: string): boolean {
  const ip = cidr.split('/')[0]!.toLowerCase();
  if (ip.includes(':')) return !(ip === '::1' || ip.startsWith('fe8') || ip.startsWith('fe9') || ip.startsWith('fea') || ip.startsWith('feb'));
  return !(ip.startsWith('127.') || ip.startsWith('169.254.'));
}

/** Management ports with at least one usable address: none means LED code 1. */
export function usableManagementPorts(status: DeviceNetworkStatus): NetworkPortStatus[] {
  return status.ports.filter((p) => p.management && p.up && p.addresses.some(isUsableAddress));
}

export const NETWORK_COLLECTIONS = [DevicePortConfigCollection, DevicePortConfigListCollection, DeviceNetworkStatusCollection] as const;

/** The IPv4 address as a 32-bit number. */
export function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** Problems a schema cannot see in a port list, as JSON-pointer paths under `base` (checked before anything applies). */
export function portConfigProblems(ports: readonly NetworkPortConfig[], base = '/networkPorts'): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  const seen = new Map<string, number>();
  const servers = ports.flatMap((p, i) => (p.dhcpServer ? [i] : []));
  // Node's UDP sockets cannot be bound to one interface (no SO_BINDTODEVICE), so one server hears every port.
  for (const i of servers.slice(1)) out.push({ path: `${base}/${i}/dhcpServer`, message: `only one port may serve DHCP (${base}/${servers[0]}/dhcpServer already does)` });
  ports.forEach((p, i) => {
    const at = `${base}/${i}`;
    const first = seen.get(p.ifName);
    if (first !== undefined) out.push({ path: `${at}/ifName`, message: `${p.ifName} is configured twice (also at ${base}/${first})` });
    seen.set(p.ifName, i);
    if (p.management && p.dhcpServer) out.push({ path: `${at}/dhcpServer`, message: 'a management port cannot serve DHCP: the controller\'s network has its own' });
    const s = p.dhcpServer;
    if (!s) return;
    if (p.addressing.type !== 'static') { out.push({ path: `${at}/dhcpServer`, message: 'a port that serves DHCP needs static addressing' }); return; }
    const [addr, bits] = p.addressing.address.split('/') as [string, string];
    const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
    const net = (ipv4ToInt(addr) & mask) >>> 0;
    const inside = (ip: string): boolean => ((ipv4ToInt(ip) & mask) >>> 0) === net;
    for (const f of ['rangeStart', 'rangeEnd'] as const) {
      if (!inside(s[f])) out.push({ path: `${at}/dhcpServer/${f}`, message: `${s[f]} is outside the port's subnet ${p.addressing.address}` });
    }
    if (ipv4ToInt(s.rangeStart) > ipv4ToInt(s.rangeEnd)) out.push({ path: `${at}/dhcpServer/rangeEnd`, message: `${s.rangeEnd} comes before rangeStart ${s.rangeStart}` });
    else if (ipv4ToInt(addr) >= ipv4ToInt(s.rangeStart) && ipv4ToInt(addr) <= ipv4ToInt(s.rangeEnd)) {
      out.push({ path: `${at}/dhcpServer`, message: `the range ${s.rangeStart}-${s.rangeEnd} holds the port's own address ${addr}` });
    }
  });
  return out;
}
