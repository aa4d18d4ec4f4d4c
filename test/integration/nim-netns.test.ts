// nim in a device network namespace, against a router namespace holding a real
// Mosquitto (the controller's broker) and busybox udhcpd: a DHCP management port
// gets its lease and reaches the broker; a static port whose gateway is cut makes
// nim fall back to the local file's port and come back when it is repaired; a
// restart keeps the list, its index and the test results.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { entryId } from '../../agents/nim/dpc-list';
import type { NetworkPortConfig } from '../../pubsub/collections';
import { BROKER_IP, NimLab, type LabPort } from '../lib/nim-lab';

const A: LabPort = { name: 'ethA', net: 1 };
const B: LabPort = { name: 'ethB', net: 2 };
const C: LabPort = { name: 'ethC', net: 3, mac: '02:00:00:c3:00:02' };
const staticPort = (p: LabPort): NetworkPortConfig => ({
  ifName: p.name, management: true, cost: 0,
  addressing: { type: 'static', address: `10.200.${p.net}.2/24`, gateway: `10.200.${p.net}.1` }, dns: [`10.200.${p.net}.53`],
});
const dhcpPort = (p: LabPort): NetworkPortConfig => ({ ifName: p.name, management: true, cost: 0, addressing: { type: 'dhcp' } });

t.test('DHCP port, fallback and recovery, restart', async (t) => {
  const lab = new NimLab([A, B, C]);
  t.teardown(() => lab.cleanup());
  t.teardown(() => lab.explainOnFailure(t));
  lab.setUp();
  await lab.startBroker();
  lab.writeProvisioning();
  lab.startDhcpServer(C, { [C.mac!]: '10.200.3.50' });
  lab.writeLocalFile('b.json', { ports: [staticPort(B)] });
  fs.writeFileSync(lab.resolvConf, 'nameserver 192.0.2.53\n');
  lab.startNim();
  await lab.publishItems({ 'timer.port.testbetterinterval': '3', 'timer.port.timeout': '1' });

  // (1) A DHCP management port: nim's udhcpc gets the lease; nim applies it and reaches the broker through it.
  await lab.publishPorts([dhcpPort(C)]);
  const st = await lab.status((s) => s.dpcKey === 'zedagent' && s.currentIndex === 0 && s.ports[0]?.reachesController === true, 'ethC leased and reaching the broker');
  const c = st.ports[0]!;
  t.equal(c.ifName, 'ethC');
  t.equal(c.addressing, 'dhcp');
  t.ok(c.addresses.includes('10.200.3.50/24'), 'the leased address');
  t.same(c.gateways, ['10.200.3.1'], 'the router from the lease');
  t.same(c.dns, ['10.200.3.53'], 'the name server from the lease');
  const expires = Date.parse(c.leaseExpiresAt!) - Date.now();
  t.ok(expires > 500_000 && expires <= 600_000, `lease expiry about 600 s ahead (${expires} ms)`);
  t.match(st.controller, { host: BROKER_IP, port: 1883, reachable: true, via: 'ethC' });
  t.equal(st.state, 'success');
  t.same(st.dns, ['10.200.3.53'], 'the resolver file nim wrote');
  t.match(fs.readFileSync(lab.resolvConf, 'utf8'), /search lab\.test\nnameserver 10\.200\.3\.53\n/);
  const rules = lab.ipJson<{ src?: string; table: string }>(lab.dev, ['rule', 'show']);
  const table = rules.find((r) => r.src === '10.200.3.50')?.table;
  t.ok(table && Number(table) > 500, 'traffic from the leased address has its own table');
  t.match(lab.ipJson(lab.dev, ['route', 'show', 'table', table!]), [{ dst: 'default', gateway: '10.200.3.1', dev: 'ethC' }]);
  t.match(lab.ipJson(lab.dev, ['route', 'show', 'default']), [{ gateway: '10.200.3.1', dev: 'ethC' }], 'the main default route');

  // (2) A static port from the controller replaces it; the DHCP client releases and goes.
  await lab.publishPorts([staticPort(A)]);
  await lab.status((s) => s.dpcKey === 'zedagent' && s.ports[0]?.ifName === 'ethA' && s.ports[0].reachesController === true, 'ethA in use');
  const addrsOf = (ifName: string): string[] => lab.ipJson<{ addr_info: { family: string; local: string }[] }>(lab.dev, ['addr', 'show', 'dev', ifName])
    .flatMap((l) => l.addr_info.filter((a) => a.family === 'inet').map((a) => a.local));
  t.same(addrsOf('ethC'), [], 'the lease is gone from ethC');
  t.notOk(lab.ip(lab.dev, ['route', 'show', 'default']).includes('ethC'));

  // Cut A's gateway: nim falls back to the local file's port B.
  lab.ip(lab.router, ['addr', 'del', '10.200.1.1/24', 'dev', 'rethA']);
  const fb = await lab.status((s) => s.dpcKey === 'local' && s.ports[0]?.ifName === 'ethB' && s.ports[0].reachesController === true, 'fallback to ethB');
  t.equal(fb.currentIndex, 1, 'a fallback: below the preferred configuration');
  t.match(fb.controller, { reachable: true, via: 'ethB' });
  t.ok(fb.errors.some((e) => /^zedagent port configuration: broker 10\.200\.9\.1:1883: connection timed out after 1 s through ethA/.test(e)), `A's error is reported: ${JSON.stringify(fb.errors)}`);
  t.same(addrsOf('ethA'), [], 'A\'s address is removed');
  t.same(addrsOf('ethB'), ['10.200.2.2']);
  t.match(lab.ipJson(lab.dev, ['route', 'show', 'default']), [{ gateway: '10.200.2.1', dev: 'ethB' }]);
  const listFb = await lab.list((l) => l.currentIndex === 1, 'list with the fallback current');
  t.match(listFb.list[0]!.state, /^fail/);
  t.match(listFb.list[0]!.lastError, 'through ethA');

  // Repaired: after testbetterinterval nim goes back to A.
  lab.ip(lab.router, ['addr', 'add', '10.200.1.1/24', 'dev', 'rethA']);
  const back = await lab.status((s) => s.dpcKey === 'zedagent' && s.currentIndex === 0 && s.ports[0]?.reachesController === true, 'back to ethA');
  t.same(back.errors, [], 'no errors left');
  t.same(addrsOf('ethB'), [], 'B\'s address is removed');

  // (4) A restart keeps the list, its index and the test results; the network stays up meanwhile.
  const before = await lab.list((l) => l.currentIndex === 0 && l.list.length === 2, 'list settled');
  await lab.stopNim();
  const saved = (JSON.parse(fs.readFileSync(path.join(lab.dirs.persist, 'status', 'nim', 'DevicePortConfigList', 'global.json'), 'utf8')) as { value: typeof before }).value;
  t.same(saved.list.map(entryId), before.list.map(entryId), 'persisted');
  t.same(addrsOf('ethA'), ['10.200.1.2'], 'nim stopping leaves the network as it is');
  const restartedAt = new Date().toISOString();
  lab.startNim();
  const after = await lab.list((l) => (l.list[l.currentIndex]?.lastSucceeded ?? '') > restartedAt, 'the new nim tested the current configuration');
  t.same(after.list.map(entryId), before.list.map(entryId), 'same entries, same identities');
  t.equal(after.currentIndex, before.currentIndex, 'same current index');
  t.equal(after.list[0]!.lastFailed, before.list[0]!.lastFailed, 'A\'s failure is remembered');
  t.equal(after.list[1]!.lastSucceeded, before.list[1]!.lastSucceeded, 'B\'s success is remembered');
  await lab.status((s) => s.dpcKey === 'zedagent' && s.ports[0]?.reachesController === true, 'the new nim reports ethA reaching the broker');
});
