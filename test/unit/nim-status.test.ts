// What nim reads from `ip -j`, resolv.conf and udhcpc's hook, and the
// DeviceNetworkStatus it builds: the host's own ports in host mode (management =
// has a default route), the configuration's ports otherwise, errors in plain words.
import t from 'tap';
import type { TestResult } from '../../agents/nim/conn-tester';
import { emptyList, entryId, mergeSources, updateEntry } from '../../agents/nim/dpc-list';
import { parseResolvConf, renderResolvConf } from '../../agents/nim/dns-driver';
import { isDevicePort, parseAddrs, parseLinks, parseRoutes, parseRules, type HostView } from '../../agents/nim/host-observer';
import { buildStatus, dropStaleResults, type StatusInput } from '../../agents/nim/status-build';
import { HOOK_TAG, parseHookLine } from '../../agents/nim/udhcpc-driver';
import { DeviceNetworkStatusCollection } from '../../pubsub/collections/network';

const NOW = Date.parse('2024-05-01T10:00:00Z');

// Trimmed from real `ip -j` output on this machine.
const LINKS = parseLinks([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536, link_type: 'loopback', address: '00:00:00:00:00:00' },
  { ifindex: 2, ifname: 'ifb0', flags: ['BROADCAST', 'NOARP'], mtu: 1500, link_type: 'ether', address: 'f6:6d:e7:cc:ac:f4', linkinfo: { info_kind: 'ifb' } },
  { ifindex: 4, ifname: 'eth0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1400, link_type: 'ether', address: '02:fc:00:00:00:01' },
  { ifindex: 5, ifname: 'docker0', flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP'], mtu: 1500, link_type: 'ether', address: '02:42:ac:11:00:01', linkinfo: { info_kind: 'bridge' } },
  { ifindex: 6, ifname: 'veth12ab', flags: ['BROADCAST', 'UP', 'LOWER_UP'], mtu: 1500, link_type: 'ether', address: '02:42:ac:11:00:02', linkinfo: { info_kind: 'veth' } },
  { ifindex: 7, ifname: 'wan1', flags: ['BROADCAST', 'MULTICAST', 'UP'], mtu: 1500, link_type: 'ether', address: '02:00:00:00:00:07', linkinfo: { info_kind: 'veth' } },
]);
const RESOLV = parseResolvConf('# generated\nsearch lab.test\nnameserver 10.255.255.53\nnameserver 10.255.255.54\n');
const VIEW: HostView = {
  links: LINKS,
  addrs: parseAddrs([{ ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }, { family: 'inet6', local: 'fe80::fc:ff:fe00:1', prefixlen: 64 }] }]),
  routes: parseRoutes([
    { dst: 'default', gateway: '192.0.2.1', dev: 'eth0' },
    { dst: '192.0.2.0/24', dev: 'eth0', protocol: 'kernel', prefsrc: '192.0.2.2' },
    { dst: 'default', gateway: '198.51.100.1', dev: 'wan1', table: '507' },
  ]),
  rules: parseRules([{ priority: 0, src: 'all', table: 'local' }, { priority: 10000, src: '198.51.100.7', table: '507' }]),
  dns: RESOLV.servers,
  search: RESOLV.search,
};

t.test('parsers', async (t) => {
  t.match(LINKS.find((l) => l.ifName === 'eth0'), { ifindex: 4, adminUp: true, up: true, mtu: 1400, mac: '02:fc:00:00:00:01' });
  t.match(LINKS.find((l) => l.ifName === 'wan1'), { adminUp: true, up: false, kind: 'veth' }, 'up without a carrier is not up');
  t.same(LINKS.filter(isDevicePort).map((l) => l.ifName), ['eth0', 'wan1'], 'not loopback, bridges, ifb or docker veths; a veth named as a port counts');
  t.same(VIEW.addrs.map((a) => a.cidr), ['192.0.2.2/24', 'fe80::fc:ff:fe00:1/64']);
  t.same(VIEW.rules, [{ priority: 0, table: 'local' }, { priority: 10000, src: '198.51.100.7', table: '507' }]);
  t.same([VIEW.dns, VIEW.search], [['10.255.255.53', '10.255.255.54'], ['lab.test']]);
  t.same(parseResolvConf(renderResolvConf(['10.0.0.53'], ['a.test'])), { servers: ['10.0.0.53'], search: ['a.test'] }, 'what nim writes reads back');

  const bound = parseHookLine([HOOK_TAG, 'bound', '10.200.3.50', '24', '255.255.255.0', '10.200.3.1', '10.200.3.53 10.200.3.54', '600', 'lab.test'].join('\t'), NOW);
  t.same(bound, { event: 'bound', lease: { ip: '10.200.3.50', prefix: 24, routers: ['10.200.3.1'], dns: ['10.200.3.53', '10.200.3.54'], domain: 'lab.test', leaseSeconds: 600, boundAt: NOW } });
  const dotted = parseHookLine([HOOK_TAG, 'renew', '10.0.0.9', '', '255.255.0.0', '', '', '60', ''].join('\t'), NOW);
  t.match(dotted?.lease, { prefix: 16, routers: [], dns: [] }, 'a dotted mask, no router, no DNS');
  t.same(parseHookLine([HOOK_TAG, 'deconfig', '', '', '', '', '', '', ''].join('\t'), NOW), { event: 'deconfig' });
  t.equal(parseHookLine('udhcpc: sending discover', NOW), undefined, 'udhcpc\'s own words are not events');
});

const base = (over: Partial<StatusInput>): StatusInput => ({
  list: emptyList(), applied: undefined, state: 'none', testing: false, view: VIEW, leases: new Map(), test: undefined, errors: [],
  localNetwork: () => undefined, ...over,
});

t.test('host mode: the host\'s ports as they are', async (t) => {
  const test: TestResult = {
    outcome: { state: 'success' }, via: 'eth0', ports: [{ ifName: 'eth0', reachesController: true, testedAt: NOW }],
    controller: { host: '203.0.113.5', port: 8883, reachable: true, via: 'eth0', testedAt: NOW },
  };
  const st = buildStatus(base({ state: 'success', test }));
  t.ok(DeviceNetworkStatusCollection.check.Check(st), 'valid for the bus');
  t.match(st, { dpcKey: 'host', currentIndex: -1, state: 'success', dns: ['10.255.255.53', '10.255.255.54'], errors: [] });
  t.same(st.ports.map((p) => [p.ifName, p.management, p.addressing]), [['eth0', true, 'host'], ['wan1', false, 'host']], 'only eth0 has a default route in the main table');
  t.match(st.ports[0], { exists: true, up: true, mtu: 1400, addresses: ['192.0.2.2/24', 'fe80::fc:ff:fe00:1/64'], gateways: ['192.0.2.1'], dns: ['10.255.255.53', '10.255.255.54'], reachesController: true });
  t.match(st.controller, { host: '203.0.113.5', port: 8883, reachable: true, via: 'eth0', testedAt: '2024-05-01T10:00:00.000Z' });
  t.same(st.ports[1]!.dns, [], 'a port that is not for management gets no name servers');
  const noDefault = buildStatus(base({ view: { ...VIEW, routes: [] } }));
  t.ok(noDefault.ports.every((p) => p.management), 'no default route anywhere: every port may be the way out');
  const viaBridge = buildStatus(base({ view: { ...VIEW, routes: parseRoutes([{ dst: 'default', gateway: '192.0.2.1', dev: 'docker0' }]) } }));
  t.same(viaBridge.ports.filter((p) => p.management).map((p) => p.ifName), ['docker0'], 'a bridge (or bond, or modem) carrying the default route is the host\'s way out');
});

t.test('configuration mode: its ports, the lease, the errors of better configurations', async (t) => {
  let list = mergeSources(emptyList(), {
    zedagent: [{ ifName: 'wan1', management: true, cost: 0, addressing: { type: 'dhcp' } }],
    local: [[{ ifName: 'eth0', management: true, cost: 0, addressing: { type: 'static', address: '192.0.2.2/24', gateway: '192.0.2.1' }, proxy: 'http://192.0.2.9:3128' }]],
  }, NOW);
  list = { ...updateEntry(list, entryId(list.list[0]!), { state: 'fail', lastError: 'wan1: no DHCP lease after 30 s', lastFailed: new Date(NOW).toISOString() }), currentIndex: 1 };
  const test: TestResult = { outcome: { state: 'success' }, via: 'eth0', ports: [{ ifName: 'eth0', reachesController: true, testedAt: NOW }] };
  const st = buildStatus(base({ list, applied: list.list[1], state: 'success', test, errors: ['DevicePortConfig/x.json: /ports/0/cost: Expected integer'] }));
  t.ok(DeviceNetworkStatusCollection.check.Check(st));
  t.match(st, { dpcKey: 'local', currentIndex: 1, state: 'success' });
  t.same(st.errors, ['DevicePortConfig/x.json: /ports/0/cost: Expected integer', 'zedagent port configuration: wan1: no DHCP lease after 30 s']);
  t.match(st.ports, [{ ifName: 'eth0', management: true, addressing: 'static', gateways: ['192.0.2.1'], proxy: 'http://192.0.2.9:3128', reachesController: true }]);

  const lease = { ip: '198.51.100.7', prefix: 24, routers: ['198.51.100.1'], dns: ['198.51.100.53'], leaseSeconds: 600, boundAt: NOW };
  const failing: TestResult = { outcome: { state: 'fail', error: 'broker 203.0.113.5:8883: connection timed out after 15 s through wan1' }, ports: [{ ifName: 'wan1', reachesController: false, testedAt: NOW, error: 'broker 203.0.113.5:8883: connection timed out after 15 s through wan1' }] };
  const dhcp = buildStatus(base({ list: { ...list, currentIndex: 0 }, applied: list.list[0], state: 'fail', test: failing, leases: new Map([['wan1', lease]]) }));
  t.match(dhcp.ports[0], { ifName: 'wan1', addressing: 'dhcp', up: false, dns: ['198.51.100.53'], leaseExpiresAt: '2024-05-01T10:10:00.000Z', gateways: ['198.51.100.1'], reachesController: false });
  t.same(dhcp.errors, ['broker 203.0.113.5:8883: connection timed out after 15 s through wan1'], 'said once, by the port');
});

t.test('the kept test results follow the list: a replaced or withdrawn configuration\'s result goes', async (t) => {
  const ok: TestResult = { outcome: { state: 'success' }, ports: [] };
  const port = (ifName: string) => [{ ifName, management: true, cost: 0, addressing: { type: 'dhcp' as const } }];
  let list = mergeSources(emptyList(), { zedagent: port('eth0'), local: [port('eth1')] }, NOW);
  const results = new Map<string, TestResult>([['host', ok], ...list.list.map((e) => [entryId(e), ok] as [string, TestResult])]);
  const eth1 = entryId(list.list[1]!);
  // 50 controller versions, none of them current or working: each replaces the one before.
  for (let i = 1; i <= 50; i++) {
    list = mergeSources(list, { zedagent: port(`eth${i + 1}`), local: [port('eth1')] }, NOW + i);
    results.set(entryId(list.list[0]!), ok);
    dropStaleResults(results, list, 'host');
  }
  t.same([...results.keys()].sort(), ['host', eth1, entryId(list.list[0]!)].sort(), 'one result per configuration in the list, and the host\'s');
  dropStaleResults(results, mergeSources(list, { zedagent: null, local: [] }, NOW + 60), 'host');
  t.same([...results.keys()], ['host'], 'everything withdrawn: only the host\'s own test is kept');
});
