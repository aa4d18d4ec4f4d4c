// What nim asks of the host for a port configuration, and how a test's local
// checks add up: policy routing per management port, one main default route (the
// port that reached the controller, else the cheapest), DHCP leases while they
// last, name servers, local networks; waits for interfaces, carriers and leases.
import t from 'tap';
import { desiredState, NOTHING } from '../../agents/nim/apply-plan';
import type { HostLink, HostView } from '../../agents/nim/host-observer';
import { checkPort, localOutcome, CARRIER_WAIT_MS } from '../../agents/nim/port-checks';
import type { Lease } from '../../agents/nim/udhcpc-driver';
import type { NetworkPortConfig } from '../../pubsub/collections/network';

const NOW = Date.parse('2024-05-01T10:00:00Z');
const link = (ifName: string, ifindex: number, up = true): HostLink => ({ ifName, ifindex, adminUp: up, up, mtu: 1500, linkType: 'ether', mac: '02:00:00:00:00:01' });
const links = [link('eth0', 2), link('eth1', 3), link('lan0', 4)];
const eth0: NetworkPortConfig = { ifName: 'eth0', management: true, cost: 10, addressing: { type: 'static', address: '10.1.0.2/24', gateway: '10.1.0.1' }, dns: ['10.1.0.53'] };
const eth1: NetworkPortConfig = { ifName: 'eth1', management: true, cost: 0, addressing: { type: 'dhcp' } };
const lan0: NetworkPortConfig = {
  ifName: 'lan0', management: false, cost: 0, mtu: 9000, addressing: { type: 'static', address: '192.168.7.1/24' },
  dhcpServer: { rangeStart: '192.168.7.100', rangeEnd: '192.168.7.200', leaseSeconds: 3600 },
};
const lease: Lease = { ip: '172.16.5.9', prefix: 16, routers: ['172.16.0.1'], dns: ['172.16.0.53'], domain: 'corp.test', leaseSeconds: 600, boundAt: NOW - 1000 };

t.test('static and DHCP management ports, a local network', async (t) => {
  const d = desiredState([eth0, eth1, lan0], new Map([['eth1', lease]]), links, NOW);
  t.same(d.links, [{ ifName: 'eth0' }, { ifName: 'eth1' }, { ifName: 'lan0', mtu: 9000 }]);
  t.same(d.addresses, [{ ifName: 'eth0', cidr: '10.1.0.2/24' }, { ifName: 'eth1', cidr: '172.16.5.9/16' }, { ifName: 'lan0', cidr: '192.168.7.1/24' }]);
  t.same(d.rules, [{ from: '10.1.0.2', table: 502, priority: 10000 }, { from: '172.16.5.9', table: 503, priority: 10000 }], 'a table per management port, none for the local network');
  t.same(d.routes, [
    { table: 502, dst: '10.1.0.0/24', dev: 'eth0', src: '10.1.0.2', proto: 'static', scope: 'link' },
    { table: 502, dst: 'default', via: '10.1.0.1', dev: 'eth0', proto: 'static' },
    { table: 503, dst: '172.16.0.0/16', dev: 'eth1', src: '172.16.5.9', proto: 'dhcp', scope: 'link' },
    { table: 503, dst: 'default', via: '172.16.0.1', dev: 'eth1', proto: 'dhcp' },
    { table: 'main', dst: 'default', via: '172.16.0.1', dev: 'eth1', proto: 'dhcp' },
  ], 'the main default goes through the cheapest management port');
  t.same(d.dhcpClients, ['eth1']);
  t.same(d.dns, { servers: ['10.1.0.53', '172.16.0.53'], search: ['corp.test'] });
  t.same(d.localNetworks, [{ ifName: 'lan0', address: '192.168.7.1/24', config: lan0.dhcpServer }]);

  const viaEth0 = desiredState([eth0, eth1], new Map([['eth1', lease]]), links, NOW, 'eth0');
  t.same(viaEth0.routes.at(-1), { table: 'main', dst: 'default', via: '10.1.0.1', dev: 'eth0', proto: 'static' }, 'the port the controller was reached through wins');
});

t.test('no lease, an expired lease, a missing interface, nothing at all', async (t) => {
  const d = desiredState([eth1], new Map(), links, NOW);
  t.same(d.addresses, []);
  t.same(d.dhcpClients, ['eth1'], 'the client runs while there is no lease');
  t.equal(d.dns, undefined, 'no name server: the resolver file is left alone');
  const expired = desiredState([eth1], new Map([['eth1', { ...lease, boundAt: NOW - 601_000 }]]), links, NOW);
  t.same(expired.addresses, [], 'an expired lease gives no address');
  const missing = desiredState([{ ...eth0, ifName: 'eth9' }], new Map(), links, NOW);
  t.same(missing, { ...NOTHING }, 'an interface that does not exist gets nothing yet');
  t.same(desiredState(undefined, new Map(), links, NOW), NOTHING, 'host mode: nothing of nim\'s');
});

const view = (over: Partial<HostView> = {}): HostView => ({
  links, addrs: [{ ifName: 'eth0', cidr: '10.1.0.2/24', family: 'inet' }], routes: [], rules: [], dns: ['10.1.0.53'], search: [], ...over,
});

t.test('local checks: ready, missing, no carrier, no lease, not applied', async (t) => {
  t.same(checkPort(eth0, view(), undefined, NOW, undefined), { ifName: 'eth0', ok: true, ip: '10.1.0.2' });
  t.same(checkPort({ ...eth0, ifName: 'eth9' }, view(), undefined, NOW, undefined), { ifName: 'eth9', ok: false, wait: 'intf-wait', error: 'eth9: no such interface' });
  const down = view({ links: [link('eth0', 2, false)] });
  t.match(checkPort(eth0, down, undefined, NOW, NOW - 1000), { wait: 'ipdns-wait', error: 'eth0: no carrier yet' }, 'just brought up: waits for the carrier');
  t.same(checkPort(eth0, down, undefined, NOW, NOW - CARRIER_WAIT_MS), { ifName: 'eth0', ok: false, error: 'eth0: link is down (no carrier)' });
  t.same(checkPort(eth1, view(), undefined, NOW, undefined), { ifName: 'eth1', ok: false, wait: 'ipdns-wait', error: 'eth1: no DHCP lease' });
  t.match(checkPort(eth0, view({ addrs: [] }), undefined, NOW, undefined), { ok: false, error: 'eth0: 10.1.0.2/24 is not on the link' });
  t.match(checkPort(eth0, view({ dns: [] }), undefined, NOW, undefined), { ok: false, error: 'eth0: name server 10.1.0.53 is not in the resolver file' });
});

t.test('how checks and probes add up', async (t) => {
  const ok = checkPort(eth0, view(), undefined, NOW, undefined);
  const waiting = checkPort(eth1, view(), undefined, NOW, undefined);
  t.same(localOutcome([eth0], [ok], [], false), { state: 'success' }, 'no controller: a working management port is enough');
  t.same(localOutcome([eth0, eth1], [ok, waiting], ['broker x: timed out through eth0'], true),
    { state: 'ipdns-wait', error: 'eth1: no DHCP lease; broker x: timed out through eth0' }, 'a port still waiting for its lease: wait, not fail');
  t.same(localOutcome([eth0], [ok], ['broker x: timed out through eth0'], true), { state: 'fail-with-ip-and-dns', error: 'broker x: timed out through eth0' });
  t.same(localOutcome([lan0], [checkPort(lan0, view(), undefined, NOW, undefined)], [], true), { state: 'fail', error: 'the configuration has no management port' });
  t.same(localOutcome([lan0], [], [], false), { state: 'success' }, 'no management port and no controller: nothing to reach');
});
