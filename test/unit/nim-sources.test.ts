// Port configurations from files on the device (each bad one named with its field,
// the good ones kept), the last resort (DHCP on every ethernet port), and nim's
// timers from the config items.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { lastResortPorts, localProblems, localSignature, readLocalConfigs } from '../../agents/nim/dpc-sources';
import type { HostLink } from '../../agents/nim/host-observer';
import { nimTimers } from '../../agents/nim/nim-agent';

const good = { ports: [{ ifName: 'eth0', management: true, cost: 0, addressing: { type: 'dhcp' } }] };

t.test('local files: good ones kept, bad ones named with the field', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nim-src-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  t.same(readLocalConfigs(root), { configs: [], errors: [] }, 'no directory: no files');
  const dir = path.join(root, 'DevicePortConfig');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(good));
  fs.writeFileSync(path.join(dir, 'b.json'), JSON.stringify({ key: 'local', ...good }));
  fs.writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ key: 'zedagent', ...good }));
  fs.writeFileSync(path.join(dir, 'd.json'), JSON.stringify({ ports: [{ ...good.ports[0], addressing: { type: 'static', address: '10.0.0.300/24' } }] }));
  fs.writeFileSync(path.join(dir, 'e.json'), '{');
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
  const sig = localSignature(root);
  const r = readLocalConfigs(root);
  t.same(r.configs.map((c) => c.file), ['DevicePortConfig/a.json', 'DevicePortConfig/b.json']);
  t.same(r.configs[0]!.ports, good.ports);
  t.equal(r.errors.length, 3);
  t.match(r.errors[0], /^DevicePortConfig\/c\.json: \/key: must be "local" or absent/);
  t.match(r.errors[1], /^DevicePortConfig\/d\.json: \/ports\/0\/addressing/);
  t.match(r.errors[2], /^DevicePortConfig\/e\.json: not JSON: /);
  fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify({ ports: [] }));
  t.not(localSignature(root), sig, 'a rewrite changes the fingerprint');
});

t.test('file content problems', async (t) => {
  t.same(localProblems(good), []);
  t.same(localProblems([good]), ['/: must be an object with "ports"']);
  t.same(localProblems({ ports: [good.ports[0], good.ports[0]] }), ['/ports/1/ifName: eth0 is configured twice (also at /ports/0)'], 'rules beyond the schema');
  t.match(localProblems({ ports: [{ ...good.ports[0], cost: 300 }] }), ['/ports/0/cost: Expected integer to be less or equal to 255']);
  t.match(localProblems({ ports: [], extra: 1 }), [/Unexpected property/]);
});

t.test('the last resort: DHCP on every ethernet port', async (t) => {
  const l = (ifName: string, kind?: string, linkType = 'ether'): HostLink => ({ ifName, ifindex: 1, adminUp: true, up: true, mtu: 1500, linkType, ...(kind ? { kind } : {}) });
  const links = [l('lo', undefined, 'loopback'), l('eth1'), l('eth0'), l('docker0', 'bridge'), l('br-1a2b', 'bridge'), l('veth9', 'veth'), l('ifb0', 'ifb'), l('wwan0', undefined, 'none')];
  t.same(lastResortPorts(links), [
    { ifName: 'eth0', management: true, cost: 0, addressing: { type: 'dhcp' } },
    { ifName: 'eth1', management: true, cost: 0, addressing: { type: 'dhcp' } },
  ]);
});

t.test('timers from the config items', async (t) => {
  t.same(nimTimers(undefined), { testIntervalMs: 300_000, testBetterIntervalMs: 600_000, timeoutMs: 15_000 }, 'defaults');
  t.same(nimTimers({ 'timer.port.testinterval': '60', 'timer.port.testbetterinterval': '0', 'timer.port.timeout': '3' }), { testIntervalMs: 60_000, testBetterIntervalMs: 0, timeoutMs: 3000 });
  t.equal(nimTimers({ 'timer.port.testinterval': '0' }).testIntervalMs, 300_000, 'below the item\'s minimum: the default');
});
