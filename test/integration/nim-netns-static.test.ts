// nim in a device network namespace without a controller: with no configuration
// it changes nothing and reports the host's network as it is; a bad local file is
// reported with its name and field while a good one is applied (address, MTU,
// policy routing, default route, name servers); removing the good one removes
// exactly what nim added, so the namespace is as it was before.
import * as fs from 'node:fs';
import t from 'tap';
import { NimLab, type LabPort } from '../lib/nim-lab';

const H: LabPort = { name: 'ethH', net: 11 };
const S: LabPort = { name: 'ethS', net: 12, up: false };

t.test('host mode, a bad file beside a good one, applied and removed cleanly', async (t) => {
  const lab = new NimLab([H, S]);
  t.teardown(() => lab.cleanup());
  t.teardown(() => lab.explainOnFailure(t));
  lab.setUp();
  // The host's own network, as another tool set it up.
  lab.ip(lab.dev, ['addr', 'add', '10.200.11.2/24', 'dev', 'ethH']);
  lab.ip(lab.dev, ['route', 'add', 'default', 'via', '10.200.11.1']);
  const resolvBefore = 'nameserver 10.200.11.53\n';
  fs.writeFileSync(lab.resolvConf, resolvBefore);
  const before = lab.snapshot();

  // (6) No configuration: the status reports the host as it is.
  lab.startNim();
  await lab.publishItems({});
  const host = await lab.status((s) => s.dpcKey === 'host' && s.ports.length === 2 && !s.testing, 'host-mode status');
  t.equal(host.currentIndex, -1);
  t.equal(host.controller, undefined, 'no provisioning file: no controller to test');
  t.equal(host.state, 'success', 'a usable address is enough without a controller');
  t.same(host.dns, ['10.200.11.53']);
  t.match(host.ports.find((p) => p.ifName === 'ethH'), {
    management: true, addressing: 'host', exists: true, up: true, gateways: ['10.200.11.1'], dns: ['10.200.11.53'],
  });
  t.ok(host.ports.find((p) => p.ifName === 'ethH')!.addresses.includes('10.200.11.2/24'));
  t.match(host.ports.find((p) => p.ifName === 'ethS'), { management: false, exists: true, up: false, addresses: [], dns: [] }, 'no default route: not a management port');
  await lab.list((l) => l.currentIndex === -1 && l.list.length === 0, 'an empty list published');
  t.same(lab.snapshot(), before, 'nothing in the namespace changed');
  t.equal(fs.readFileSync(lab.resolvConf, 'utf8'), resolvBefore, 'the resolver file is untouched');

  // (5) A bad file (a field out of range), another that breaks a rule, and a good one.
  lab.writeLocalFile('bad.json', { ports: [{ ifName: 'ethX', management: true, cost: 300, addressing: { type: 'dhcp' } }] });
  lab.writeLocalFile('dup.json', { ports: [
    { ifName: 'ethS', management: true, cost: 0, addressing: { type: 'dhcp' } },
    { ifName: 'ethS', management: false, cost: 0, addressing: { type: 'none' } },
  ] });
  lab.writeLocalFile('broken.json', '{"ports": [');
  // (3) The good one: ethS (down until now) static, with an MTU and a name server.
  lab.writeLocalFile('good.json', { ports: [{
    ifName: 'ethS', management: true, cost: 0, mtu: 1400, dns: ['10.200.12.53'],
    addressing: { type: 'static', address: '10.200.12.2/24', gateway: '10.200.12.1' },
  }] });
  const st = await lab.status((s) => s.dpcKey === 'local' && s.currentIndex === 0 && s.state === 'success', 'the good file applied');
  t.ok(st.errors.some((e) => e.startsWith('DevicePortConfig/bad.json: /ports/0/cost:')), `the bad file and field named: ${JSON.stringify(st.errors)}`);
  t.ok(st.errors.includes('DevicePortConfig/dup.json: /ports/1/ifName: ethS is configured twice (also at /ports/0)'), 'a rule the schema cannot see, named');
  t.ok(st.errors.some((e) => e.startsWith('DevicePortConfig/broken.json: not JSON')), 'a file that is not JSON, named');
  const list = await lab.list((l) => l.list.length === 1, 'only the good file in the list');
  t.equal(list.list[0]!.key, 'local');
  const s = st.ports[0]!;
  t.match(s, { ifName: 'ethS', addressing: 'static', exists: true, up: true, mtu: 1400, gateways: ['10.200.12.1'], dns: ['10.200.12.53'] });
  t.ok(s.addresses.includes('10.200.12.2/24'));

  const link = lab.ipJson<{ flags: string[]; mtu: number; ifindex: number }>(lab.dev, ['link', 'show', 'ethS'])[0]!;
  t.ok(link.flags.includes('UP'), 'ethS brought up');
  t.equal(link.mtu, 1400);
  const table = String(500 + link.ifindex);
  t.match(lab.ipJson(lab.dev, ['rule', 'show']), [{}, { priority: 10000, src: '10.200.12.2', table }], 'traffic from ethS\'s address looks up its own table');
  t.match(lab.ipJson(lab.dev, ['route', 'show', 'table', table]), [
    { dst: 'default', gateway: '10.200.12.1', dev: 'ethS' }, { dst: '10.200.12.0/24', dev: 'ethS', prefsrc: '10.200.12.2' },
  ]);
  t.match(lab.ipJson(lab.dev, ['route', 'show', 'default']), [{ gateway: '10.200.12.1', dev: 'ethS' }], 'the main default route goes through the management port');
  t.equal(fs.readFileSync(lab.resolvConf, 'utf8').split('\n').filter((l) => l.startsWith('nameserver')).join(), 'nameserver 10.200.12.53');
  t.ok(lab.ipJson<{ addr_info: { local: string }[] }>(lab.dev, ['addr', 'show', 'ethH'])[0]!.addr_info.some((a) => a.local === '10.200.11.2'), 'the host\'s own address on ethH is left alone');

  // Removed: exactly what nim added goes; the host's default route and resolver file come back.
  lab.removeLocalFile('good.json');
  const back = await lab.status((x) => x.dpcKey === 'host' && !x.testing, 'host mode again');
  t.ok(back.errors.some((e) => e.startsWith('DevicePortConfig/bad.json')), 'the bad file is still reported');
  await lab.status((x) => x.dns[0] === '10.200.11.53', 'the old name server in the status');
  t.same(lab.snapshot(), before, 'the namespace is as it was before');
  t.equal(fs.readFileSync(lab.resolvConf, 'utf8'), resolvBefore, 'the resolver file has its old text');
});
