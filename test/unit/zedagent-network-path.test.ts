// Which proxy zedagent's link to the controller uses, from nim's status and list.
import t from 'tap';
import { controllerProxy } from '../../agents/zedagent/network-path';
import type { DeviceNetworkStatus, DevicePortConfigList, NetworkPortConfig } from '../../pubsub/collections';

const port = (ifName: string, cost: number, proxy?: string, management = true): NetworkPortConfig => ({
  ifName, management, cost, addressing: { type: 'dhcp' }, ...(proxy ? { proxy } : {}),
});
const list = (ports: NetworkPortConfig[], currentIndex = 0): DevicePortConfigList => ({
  currentIndex, list: [{ key: 'zedagent', timePriority: '2026-11-23T00:00:00Z', state: 'success', ports }],
});
const status = (via?: string): DeviceNetworkStatus => ({
  dpcKey: 'zedagent', currentIndex: 0, state: 'success', testing: false, ports: [], dns: [], errors: [],
  ...(via ? { controller: { host: '10.0.0.1', port: 1883, reachable: true, via } } : {}),
});

t.test('the proxy of the port nim reaches the controller by, with its credentials from the applied configuration', async (t) => {
  const ports = [port('eth0', 0), port('eth1', 10, 'http://u:p@10.9.0.3:3128')];
  t.equal(controllerProxy(status('eth1'), list(ports)), 'http://u:p@10.9.0.3:3128');
  t.equal(controllerProxy(status('eth0'), list(ports)), undefined, 'the port in use has none: direct');
});

t.test('before nim reached the controller, or during an outage: the cheapest management port, as nim tries them', async (t) => {
  const ports = [port('eth2', 20, 'http://10.9.0.4:8080'), port('eth1', 10, 'http://10.9.0.3:3128'), port('eth3', 0, 'http://10.9.0.5:1', false)];
  t.equal(controllerProxy(status(), list(ports)), 'http://10.9.0.3:3128', 'a local network port does not count');
  t.equal(controllerProxy(status(), list([port('eth0', 0), port('wwan0', 50, 'http://10.9.0.3:3128')])), undefined,
    'the cheapest goes direct: an outage does not move the link to another port\'s proxy');
});

t.test('nothing applied (host mode), or nothing known: no proxy', async (t) => {
  t.equal(controllerProxy(status('eth0'), list([port('eth0', 0, 'http://10.9.0.3:3128')], -1)), undefined);
  t.equal(controllerProxy(undefined, undefined), undefined);
});
