// The LED code as the person at the device sees it: nim's "no address" wins over
// whatever zedagent says about the controller.
import t from 'tap';
import { chooseLedCode } from '../../agents/ledmanager/led-code';
import type { DeviceNetworkStatus, NetworkPortStatus } from '../../pubsub/collections';

function port(ifName: string, addresses: string[], extra: Partial<NetworkPortStatus> = {}): NetworkPortStatus {
  return { ifName, management: true, cost: 0, addressing: 'dhcp', exists: true, up: true, addresses, gateways: [], dns: [], ...extra };
}
function net(ports: NetworkPortStatus[], errors: string[] = []): DeviceNetworkStatus {
  return { dpcKey: 'zedagent', currentIndex: 0, state: 'success', testing: false, ports, dns: [], errors };
}

t.test('no usable address on any management port shows 1 while zedagent is still trying', async (t) => {
  const c = chooseLedCode({ counter: 2, reason: 'connecting' }, net([port('eth0', ['169.254.3.4/16', 'fe80::1/64'])], ['eth0: no DHCP lease after 30 s']));
  t.equal(c.code, 1);
  t.match(c.reason, /no usable address on eth0: eth0: no DHCP lease after 30 s/);
});

t.test('a link that is down does not count, nor a local network port with an address', async (t) => {
  t.equal(chooseLedCode({ counter: 2, reason: '' }, net([port('eth0', ['10.0.0.2/24'], { up: false })])).code, 1);
  t.equal(chooseLedCode(undefined, net([port('eth1', ['10.1.0.1/24'], { management: false })])).code, 1);
  t.match(chooseLedCode(undefined, net([])).reason, /no management port/);
});

t.test('once zedagent heard from the controller, its code shows even when nim names no usable port', async (t) => {
  t.equal(chooseLedCode({ counter: 4, reason: 'onboarded' }, net([])).code, 4, 'the uplink is a link nim does not list (a bond, a modem)');
  t.equal(chooseLedCode({ counter: 18, reason: 'not registered' }, net([])).code, 18);
});

t.test('with an address, zedagent\'s code shows; below 2 it is "trying" (EVE)', async (t) => {
  const ok = net([port('eth0', ['10.0.0.2/24'])]);
  t.same(chooseLedCode({ counter: 18, reason: 'not registered' }, ok), { code: 18, reason: 'not registered' });
  t.equal(chooseLedCode({ counter: 0, reason: 'starting' }, ok).code, 2);
  t.equal(chooseLedCode(undefined, ok).code, 2);
});

t.test('without nim, zedagent\'s code shows as it is; with neither, 0', async (t) => {
  t.equal(chooseLedCode({ counter: 3, reason: 'connected' }, undefined).code, 3);
  t.equal(chooseLedCode(undefined, undefined).code, 0);
});
