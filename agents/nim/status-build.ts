// DeviceNetworkStatus from what nim holds and what the host shows: each port of
// the configuration on the host (or, with none, each of the host's own ports),
// their addresses, gateways, DNS and lease, the last test, and the errors in plain
// words. Pure.
import type {
  DeviceNetworkStatus, DevicePortConfigList, DpcEntry, DpcState, NetworkPortStatus,
} from '../../pubsub/collections/network';
import { redactProxy } from '../../lib/proxy-tunnel';
import type { TestResult } from './conn-tester';
import { entryId } from './dpc-list';
import { gatewaysOf, isDevicePort, type HostView } from './host-observer';
import type { LocalNetworkStatus } from './local-networks';
import { leaseExpiresAt, type Lease } from './udhcpc-driver';

export interface StatusInput {
  list: DevicePortConfigList;
  /** The configuration on the host; undefined in host mode. */
  applied: DpcEntry | undefined;
  state: DpcState;
  testing: boolean;
  view: HostView;
  leases: ReadonlyMap<string, Lease>;
  /** The last test of the configuration on the host (or of the host). */
  test: TestResult | undefined;
  /** Bad local files, failed changes. */
  errors: readonly string[];
  localNetwork(ifName: string): LocalNetworkStatus | undefined;
}

/**
 * Forgets the tests of configurations no longer in the list (replaced, withdrawn, capped away):
 * nim keeps one result per configuration for the status, and the list is all it can show.
 * The host's own test (`keep`) stays.
 */
export function dropStaleResults(results: Map<string, TestResult>, list: DevicePortConfigList, keep: string): void {
  const ids = new Set(list.list.map(entryId));
  for (const id of results.keys()) if (id !== keep && !ids.has(id)) results.delete(id);
}

const iso = (ms: number): string => new Date(ms).toISOString();
const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];

export function buildStatus(i: StatusInput): DeviceNetworkStatus {
  const ports = i.applied ? configPorts(i, i.applied) : hostPorts(i);
  const errors = [...i.errors];
  i.list.list.forEach((e, index) => {
    // Higher-priority configurations that failed: why nim is not using them.
    if (i.applied && index < i.list.currentIndex && e.lastError && e.state !== 'success') errors.push(`${e.key} port configuration: ${e.lastError}`);
  });
  for (const p of ports) if (p.error) errors.push(p.error);
  if (i.test?.outcome.error && !ports.some((p) => p.error && i.test!.outcome.error!.includes(p.error))) errors.push(i.test.outcome.error);
  const c = i.test?.controller;
  return {
    dpcKey: i.applied ? i.applied.key : 'host',
    currentIndex: i.applied ? i.list.currentIndex : -1,
    state: i.state,
    testing: i.testing,
    ...(c ? {
      controller: {
        host: c.host, port: c.port, reachable: c.reachable,
        ...(c.via ? { via: c.via } : {}), testedAt: iso(c.testedAt), ...(c.error ? { error: c.error } : {}),
      },
    } : {}),
    ports,
    dns: [...i.view.dns],
    errors: uniq(errors),
  };
}

function observed(view: HostView, ifName: string): Pick<NetworkPortStatus, 'exists' | 'up' | 'mac' | 'mtu' | 'addresses' | 'gateways'> {
  const link = view.links.find((l) => l.ifName === ifName);
  return {
    exists: !!link,
    up: !!link?.up,
    ...(link?.mac ? { mac: link.mac } : {}),
    ...(link ? { mtu: link.mtu } : {}),
    addresses: view.addrs.filter((a) => a.ifName === ifName).map((a) => a.cidr),
    gateways: gatewaysOf(view, ifName),
  };
}

function tested(i: StatusInput, ifName: string): Pick<NetworkPortStatus, 'reachesController' | 'testedAt' | 'error'> {
  const r = i.test?.ports.find((p) => p.ifName === ifName);
  if (!r) return {};
  return {
    ...(r.reachesController !== undefined ? { reachesController: r.reachesController } : {}),
    testedAt: iso(r.testedAt),
    ...(r.error ? { error: r.error } : {}),
  };
}

function configPorts(i: StatusInput, entry: DpcEntry): NetworkPortStatus[] {
  return entry.ports.map((p) => {
    const lease = p.addressing.type === 'dhcp' ? i.leases.get(p.ifName) : undefined;
    const server = p.dhcpServer ? i.localNetwork(p.ifName) : undefined;
    return {
      ifName: p.ifName,
      management: p.management,
      cost: p.cost,
      addressing: p.addressing.type,
      ...observed(i.view, p.ifName),
      dns: uniq([...(p.dns ?? []), ...(lease?.dns ?? [])]),
      ...(lease ? { leaseExpiresAt: iso(leaseExpiresAt(lease)) } : {}),
      ...tested(i, p.ifName),
      ...(p.proxy ? { proxy: redactProxy(p.proxy) } : {}),
      ...(server ? { dhcpServer: { leases: server.leases, poolSize: server.poolSize, ...(server.error ? { error: server.error } : {}) } } : {}),
    };
  });
}

/**
 * Nothing configured: the host's own ports as they are. Management: those with a default route (all, if
 * none has one). A link that carries the default route counts whatever it is (a bridge, a bond, a
 * modem): the host reaches the world through it.
 */
function hostPorts(i: StatusInput): NetworkPortStatus[] {
  const withDefault = new Set(i.view.routes.filter((r) => r.table === 'main' && r.dst === 'default' && r.dev).map((r) => r.dev!));
  const links = i.view.links.filter((l) => isDevicePort(l) || (withDefault.has(l.ifName) && l.ifName !== 'lo'));
  const anyDefault = links.some((l) => withDefault.has(l.ifName));
  return links.map((l) => {
    const management = anyDefault ? withDefault.has(l.ifName) : true;
    return {
      ifName: l.ifName,
      management,
      cost: 0,
      addressing: 'host' as const,
      ...observed(i.view, l.ifName),
      dns: management ? [...i.view.dns] : [],
      ...tested(i, l.ifName),
    };
  });
}
