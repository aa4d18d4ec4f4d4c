// nim serving DHCP on a local-network port, end to end: a config names the port
// with dhcpServer, nim puts the address on it and serves leases to a real busybox
// udhcpc downstream; the lease survives a restart of nim, and the server stops
// when the port leaves the configuration.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import type { NetworkPortConfig } from '../../pubsub/collections';
import { NimLab, type LabPort } from '../lib/nim-lab';

const M: LabPort = { name: 'ethM', net: 31 };
const L: LabPort = { name: 'ethL', net: 30 };
const mgmt: NetworkPortConfig = { ifName: 'ethM', management: true, cost: 0, addressing: { type: 'static', address: '10.200.31.2/24', gateway: '10.200.31.1' } };
const local: NetworkPortConfig = {
  ifName: 'ethL', management: false, cost: 0, addressing: { type: 'static', address: '10.200.30.1/24' },
  dhcpServer: { rangeStart: '10.200.30.50', rangeEnd: '10.200.30.51', leaseSeconds: 600, dns: ['10.200.30.53'], domain: 'local.test' },
};

/** One run of busybox udhcpc on the downstream end; resolves with what it was given, or undefined. */
function lease(lab: NimLab, hook: string, out: string): { ip?: string; router?: string; dns?: string; domain?: string } | undefined {
  fs.rmSync(out, { force: true });
  try {
    execFileSync('ip', ['netns', 'exec', lab.router, 'busybox', 'udhcpc', '-f', '-q', '-n', '-t', '3', '-T', '1', '-i', 'rethL', '-s', hook], {
      env: { ...process.env, LEASE_OUT: out }, stdio: 'ignore', timeout: 20_000,
    });
  } catch { /* no lease: -n makes it exit 1 */ }
  return fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : undefined;
}

t.test('nim serves DHCP on a local network port to a real client', async (t) => {
  const lab = new NimLab([M, L]);
  t.teardown(() => lab.cleanup());
  t.teardown(() => lab.explainOnFailure(t));
  lab.setUp();
  // The downstream side is a client: its end of the link has no address of its own.
  lab.ip(lab.router, ['addr', 'flush', 'dev', 'rethL']);
  await lab.startBroker();
  lab.writeProvisioning();
  const hook = path.join(lab.root, 'udhcpc-hook.sh');
  fs.writeFileSync(hook, '#!/bin/sh\n[ "$1" = bound ] && printf \'{"ip":"%s","router":"%s","dns":"%s","domain":"%s"}\' "$ip" "$router" "$dns" "$domain" > "$LEASE_OUT"\nexit 0\n', { mode: 0o755 });
  const out = path.join(lab.root, 'lease.json');

  lab.startNim();
  await lab.publishItems({ 'timer.port.timeout': '1' });
  await lab.publishPorts([mgmt, local]);
  const served = await lab.status((s) => s.ports.find((p) => p.ifName === 'ethL')?.dhcpServer !== undefined, 'ethL serving DHCP');
  t.match(served.ports.find((p) => p.ifName === 'ethL'), { management: false, addresses: ['10.200.30.1/24'], dhcpServer: { leases: 0, poolSize: 2 } });

  const got = lease(lab, hook, out);
  t.same(got, { ip: '10.200.30.50', router: '10.200.30.1', dns: '10.200.30.53', domain: 'local.test' }, 'the client is given an address from the pool, with our router, DNS and domain');
  await lab.status((s) => s.ports.find((p) => p.ifName === 'ethL')?.dhcpServer?.leases === 1, 'the lease counted in the status');

  // A restart of nim keeps the lease: the same client (same MAC) is given the same address back.
  await lab.stopNim();
  lab.startNim();
  await lab.status((s) => s.ports.find((p) => p.ifName === 'ethL')?.dhcpServer?.leases === 1, 'the lease survives a restart of nim');
  t.equal(lease(lab, hook, out)?.ip, '10.200.30.50', 'the client keeps its address');

  // The port leaves the configuration: no more DHCP on it.
  await lab.publishPorts([mgmt]);
  await lab.status((s) => s.ports.every((p) => p.ifName !== 'ethL' || p.dhcpServer === undefined), 'ethL no longer served');
  t.equal(lease(lab, hook, out), undefined, 'a client is given nothing once the port is gone from the configuration');
  t.same(lab.ipJson<{ addr_info: { family: string }[] }>(lab.dev, ['addr', 'show', 'dev', 'ethL']).flatMap((l) => l.addr_info.filter((a) => a.family === 'inet')), [], 'and nim took its address away');
});
