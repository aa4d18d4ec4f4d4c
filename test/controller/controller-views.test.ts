// What `zedctl show` prints about a device's host and ports.
import t from 'tap';
import { showText, type DeviceView } from '../../controller/views';

const view: DeviceView = {
  record: { serial: 'dev-1', state: 'onboarded', deviceId: '3cf32c27-b42c-48b0-bd06-1107cac95d4f', createdAt: '2026-11-23T00:00:00Z' },
  device: {
    zedboxVersion: '0.1.0', hostname: 'edge-1', startedAt: '2026-11-23T00:00:01Z', bootReason: 'first-boot', restartCounter: 1,
    hardware: { cpu: { cores: 2, arch: 'x64' }, memoryTotalBytes: 1 << 30 }, os: { kernel: '6.1', arch: 'x64' },
    config: { lastResult: 'none', items: {}, unknownItems: [] },
    network: {
      source: 'zedagent', state: 'success', controllerVia: 'eth0', errors: ['eth2: the link is down'],
      ports: [
        { ifName: 'eth0', management: true, up: true, addresses: ['10.0.0.5/24'], gateways: ['10.0.0.1'], dns: ['10.0.0.1'], reachesController: true },
        { ifName: 'eth1', management: false, up: true, addresses: ['10.1.0.1/24'], gateways: [], dns: [], dhcpLeases: 3 },
      ],
    },
  },
  apps: [], volumes: [], contentTrees: [], networkInstances: [],
};

t.test('show: the host line keeps its indent, and the ports follow', async (t) => {
  const text = showText(view);
  t.match(text, '\n  host edge-1: zedbox 0.1.0, OS kernel 6.1 x64\n', 'indented like its neighbours, no doubled spaces');
  t.match(text, '  network: port configuration from zedagent, success; reaches the controller via eth0\n');
  t.match(text, '    eth0  management, up, 10.0.0.5/24, gw 10.0.0.1\n');
  t.match(text, '    eth1  local, up, 10.1.0.1/24, serves DHCP: 3 leases\n');
  t.match(text, '    error: eth2: the link is down\n');
});
