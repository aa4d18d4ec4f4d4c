// A broker given by name (mqtts://localhost:PORT) whose certificate names only the
// host (DNS:localhost, no IP): nim resolves the name to connect, but the TLS check
// must still be made against the name, in host mode, in a configuration's test, and
// through an HTTP proxy (which is given the name and resolves it itself).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import t from 'tap';
import { probeBroker, testConfig, testHost, type BrokerTarget } from '../../agents/nim/conn-tester';
import type { HostView } from '../../agents/nim/host-observer';
import type { NetworkPortConfig } from '../../pubsub/collections/network';
import { startTinyproxy } from '../lib/tinyproxy';

/** A CA and a server certificate whose only name is DNS:localhost, made with openssl in dir. */
function makeNameOnlyCert(dir: string): { ca: string; cert: string; key: string } {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=nim name test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(dir, 'server.ext'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x1234', '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem');
  const read = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');
  return { ca: read('ca.pem'), cert: read('server.pem'), key: read('server.key') };
}

/** A view with one up port that holds its static address (the probes go to loopback, so nothing binds to it). */
const VIEW: HostView = {
  links: [{ ifName: 'eth0', ifindex: 2, adminUp: true, up: true, mtu: 1500, linkType: 'ether', mac: '02:00:00:00:00:01' }],
  addrs: [{ ifName: 'eth0', cidr: '192.0.2.2/24', family: 'inet' }],
  routes: [], rules: [], dns: [], search: [],
};
const eth0 = (extra: Partial<NetworkPortConfig> = {}): NetworkPortConfig => ({
  ifName: 'eth0', management: true, cost: 0, addressing: { type: 'static', address: '192.0.2.2/24', gateway: '192.0.2.1' }, ...extra,
});

t.test('a TLS broker by name is checked against its name, not its address', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-nim-name-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pki = makeNameOnlyCert(dir);
  const server = tls.createServer({ cert: pki.cert, key: pki.key }, (s) => s.end());
  server.on('tlsClientError', () => {}); // the IP-checked clients of a broken build hang up mid-handshake
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const target: BrokerTarget = { host: 'localhost', port, tls: true, caPem: pki.ca };

  const byIp = await probeBroker({ ...target, host: '127.0.0.1' }, { timeoutMs: 5000 });
  t.match(byIp, { ok: false, error: /TLS handshake failed: .*IP: 127\.0\.0\.1 is not in the cert's list/ }, 'the certificate really does not name the address');

  const host = await testHost(VIEW, target, 5000, Date.now());
  t.match(host, { outcome: { state: 'success' }, controller: { host: 'localhost', port, reachable: true } }, 'host mode: mqtts://localhost works');
  t.notOk(host.outcome.error);

  const direct = await testConfig({ ports: [eth0()], view: VIEW, leases: new Map(), upSince: () => undefined, target, timeoutMs: 5000, now: Date.now() });
  t.match(direct, { outcome: { state: 'success' }, via: 'eth0', controller: { host: 'localhost', reachable: true } }, 'a configuration\'s test: mqtts://localhost works');

  const proxy = (await startTinyproxy(t)).url;
  const viaProxy = await testConfig({ ports: [eth0({ proxy })], view: VIEW, leases: new Map(), upSince: () => undefined, target, timeoutMs: 5000, now: Date.now() });
  t.match(viaProxy, { outcome: { state: 'success' }, via: 'eth0' }, 'through a proxy: CONNECT localhost, then TLS checked against the name');

  // A name the device cannot resolve itself: with a proxy, the proxy is asked (and answers), nim does not look it up.
  const unknown = { host: 'no-such-broker.invalid', port, tls: true, caPem: pki.ca };
  const proxied = await testConfig({ ports: [eth0({ proxy })], view: VIEW, leases: new Map(), upSince: () => undefined, target: unknown, timeoutMs: 5000, now: Date.now() });
  t.equal(proxied.outcome.state, 'fail-with-ip-and-dns');
  t.match(proxied.outcome.error, `broker no-such-broker.invalid:${port}: proxy ${proxy} answered`, 'the proxy\'s answer, not a local lookup failure');
  const unproxied = await testConfig({ ports: [eth0()], view: VIEW, leases: new Map(), upSince: () => undefined, target: unknown, timeoutMs: 5000, now: Date.now() });
  t.match(unproxied.outcome, { state: 'fail', error: /^broker no-such-broker\.invalid:\d+: cannot resolve the name \(ENOTFOUND\)/ }, 'without a proxy the name is resolved here, and its failure named');
});
