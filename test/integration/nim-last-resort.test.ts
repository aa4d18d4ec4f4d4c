// nim's last resort (network.fallback.any.eth): DHCP on every ethernet port of the
// device, with nothing else configured; a port that appears later joins it at once.
// The host's change arrives as one debounced event, so the list must be made from a
// fresh look at the host, not from the view of the pass before.
import t from 'tap';
import { NimLab, type LabPort } from '../lib/nim-lab';

const A: LabPort = { name: 'ethA', net: 41, mac: '02:00:00:41:00:02' };

t.test('the last resort takes every ethernet port, and one that appears later', async (t) => {
  const lab = new NimLab([A]);
  t.teardown(() => lab.cleanup());
  t.teardown(() => lab.explainOnFailure(t));
  lab.setUp();
  await lab.startBroker();
  lab.writeProvisioning();
  lab.startDhcpServer(A, { [A.mac!]: '10.200.41.50' });
  lab.startNim();
  // A long test interval: no periodic test looks at the host meanwhile (it would hide a stale view).
  await lab.publishItems({ 'network.fallback.any.eth': 'true', 'timer.port.testinterval': '300', 'timer.port.timeout': '1' });
  await lab.publishPorts(undefined);

  const lastResortPorts = (l: { list: readonly { key: string; ports: readonly { ifName: string }[] }[] }): string[] | undefined =>
    l.list.find((e) => e.key === 'lastresort')?.ports.map((p) => p.ifName);
  await lab.status((s) => s.dpcKey === 'lastresort' && s.ports.some((p) => p.ifName === 'ethA' && p.reachesController === true), 'the last resort in use through ethA');
  t.same(lastResortPorts(await lab.list(() => true, 'the list')), ['ethA'], 'DHCP on the only ethernet port');

  // A new ethernet port appears on the device (created down: one link event, nothing else moves).
  lab.ip(lab.dev, ['link', 'add', 'ethB', 'type', 'veth', 'peer', 'name', 'rethB', 'netns', lab.router]);
  const l = await lab.list((x) => lastResortPorts(x)?.includes('ethB') === true, 'ethB in the last resort', 10_000);
  t.same(lastResortPorts(l), ['ethA', 'ethB'], 'the new port joins the last resort');
});
