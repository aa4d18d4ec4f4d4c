// nim's DHCP server against the real busybox udhcpc, each in its own network namespace on a bridge:
// the options a client gets, a full pool, RELEASE, DECLINE (udhcpc's ARP check), expiry, a foreign
// address, another server's REQUEST, bad packets and a restart — node-dhcp's faults, one by one.
// Topology (names carry this process's pid): a hub namespace holds the bridge; the server (10.77.0.1/24),
// three clients, a squatter (a host that already uses an address) and a crafter (10.77.0.200, sends
// hand-made packets) each have one veth into it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { LeaseView } from '../../agents/nim/dhcp-leases';
import type { DhcpReplyPacket, DhcpRequestPacket } from '../../agents/nim/dhcp-packet';
import { encodeReply } from '../../agents/nim/dhcp-packet';
import type { DhcpServerConfig } from '../../pubsub/collections/network';
import { jsonLine, start, type Proc } from '../lib/proc';
import { waitUntil } from '../lib/wait';

const P = process.pid;
const HUB = `zd${P}h`;
const SRV = `zd${P}s`;
const CLIENTS = [1, 2, 3].map((i) => `zd${P}c${i}`);
const [C1, C2, C3] = CLIENTS as [string, string, string];
const SQUAT = `zd${P}q`;
const CRAFT = `zd${P}x`;
const ALL = [HUB, SRV, ...CLIENTS, SQUAT, CRAFT];
const MAC: Record<string, string> = { [C1]: '02:00:00:00:00:01', [C2]: '02:00:00:00:00:02', [C3]: '02:00:00:00:00:03' };
const SERVER = '10.77.0.1';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-dhcp-'));
const procs: Proc[] = [];

const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }); };

t.teardown(() => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  for (const ns of ALL) { try { ip('netns', 'del', ns); } catch { /* not made */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
});

// A case that fails half-way must not leave its server on port 67 (or a client) for the next one.
t.afterEach(async () => {
  const running = procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  for (const p of running) p.child.kill('SIGKILL');
  await Promise.all(running.map((p) => p.exited));
});

t.before(() => {
  for (const ns of ALL) { ip('netns', 'add', ns); ip('-n', ns, 'link', 'set', 'lo', 'up'); }
  ip('-n', HUB, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', HUB, 'link', 'set', 'br0', 'up');
  ALL.slice(1).forEach((ns, i) => {
    ip('-n', HUB, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', HUB, 'link', 'set', `p${i}`, 'master', 'br0');
    ip('-n', HUB, 'link', 'set', `p${i}`, 'up');
    if (MAC[ns]) ip('-n', ns, 'link', 'set', 'eth0', 'address', MAC[ns]!);
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  });
  ip('-n', SRV, 'addr', 'add', `${SERVER}/24`, 'dev', 'eth0');
  ip('-n', CRAFT, 'addr', 'add', '10.77.0.200/24', 'dev', 'eth0');
  // udhcpc's hook: records each event in <script>.log and configures the interface as a device would.
  for (const ns of CLIENTS) {
    fs.writeFileSync(path.join(tmp, `${ns}.sh`), `#!/bin/sh
printf '%s\\tip=%s\\tmask=%s\\trouter=%s\\tdns=%s\\tlease=%s\\tserverid=%s\\tdomain=%s\\n' "$1" "$ip" "$mask" "$router" "$dns" "$lease" "$serverid" "$domain" >> "$0.log"
case "$1" in
  bound) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
  renew) ip addr replace "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
`, { mode: 0o755 });
  }
});

// --- the server ---

interface Server { proc: Proc; state: string; polls: number }

const cfg = (over: Partial<DhcpServerConfig> = {}): DhcpServerConfig => ({ rangeStart: '10.77.0.10', rangeEnd: '10.77.0.20', leaseSeconds: 600, ...over });

function spawnServer(config: DhcpServerConfig, state: string): Proc {
  const proc = start('ip', ['netns', 'exec', SRV, process.execPath, '--import', 'tsx', 'test/fixtures/dhcp-server.ts'], {
    DHCP_IF: 'eth0', DHCP_ADDRESS: `${SERVER}/24`, DHCP_CONFIG: JSON.stringify(config), DHCP_STATE: state,
  });
  procs.push(proc);
  return proc;
}

async function startServer(config: DhcpServerConfig, state: string): Promise<Server> {
  const proc = spawnServer(config, state);
  await proc.waitFor((l) => jsonLine(l)?.event === 'ready', 'the DHCP server to be ready');
  return { proc, state, polls: 0 };
}

/** The error a server that cannot start prints. */
async function startError(config: DhcpServerConfig, state: string): Promise<string> {
  const proc = spawnServer(config, state);
  const line = await proc.waitFor((l) => jsonLine(l)?.event === 'error' || jsonLine(l)?.event === 'ready', 'the DHCP server to fail');
  return String(jsonLine(line)?.message);
}

interface Snapshot { leases: LeaseView[]; status: { leases: number; poolSize: number }; counters: { received: number; malformed: number; sent: number; outcomes: Record<string, number> } }

/** The server's leases, status and counters, as the fixture prints them on SIGUSR2. */
async function inspect(s: Server): Promise<Snapshot> {
  const n = ++s.polls;
  s.proc.child.kill('SIGUSR2');
  const line = await s.proc.waitFor((l) => jsonLine(l)?.event === 'leases' && jsonLine(l)?.n === n, 'the lease list');
  return jsonLine(line) as unknown as Snapshot;
}

async function stopServer(s: Server): Promise<void> {
  s.proc.child.kill('SIGTERM');
  await s.proc.waitFor((l) => jsonLine(l)?.event === 'stopped', 'the server to stop on SIGTERM', 5000);
  await s.proc.exited;
}

const logged = (s: Server, msg: string, fields: Record<string, unknown> = {}): Promise<string> =>
  s.proc.waitFor((l) => { const j = jsonLine(l); return j?.msg === msg && Object.entries(fields).every(([k, v]) => j[k] === v); }, `log "${msg}"`);

// --- the real client ---

type ClientEvent = Record<string, string> & { event: string };

/** Every event the client's hook script recorded, deconfig included. */
function allEvents(ns: string): ClientEvent[] {
  const file = path.join(tmp, `${ns}.sh.log`);
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((line) => {
    const [event, ...kv] = line.split('\t');
    const e: ClientEvent = { event: event! };
    for (const pair of kv) { const i = pair.indexOf('='); if (i > 0) e[pair.slice(0, i)] = pair.slice(i + 1); }
    return e;
  });
}

/** The events from the `from`th on, without deconfig (udhcpc's "no address yet"). */
const events = (ns: string, from = 0): ClientEvent[] => allEvents(ns).slice(from).filter((e) => e.event !== 'deconfig');

/** Starts udhcpc on the namespace's eth0; `from` marks where its events begin. */
function udhcpc(ns: string, ...args: string[]): Proc & { from: number } {
  const from = allEvents(ns).length;
  const proc = start('ip', ['netns', 'exec', ns, 'busybox', 'udhcpc', '-f', '-i', 'eth0', '-s', path.join(tmp, `${ns}.sh`), ...args]);
  procs.push(proc);
  return { ...proc, from };
}

/** udhcpc run to its end (-n: it gives up after its tries); its exit code and the events it recorded. */
async function udhcpcOnce(ns: string, ...args: string[]): Promise<{ code: number | null; events: ClientEvent[]; out: string }> {
  const p = udhcpc(ns, '-q', '-n', '-t', '2', '-T', '1', ...args);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, events: events(ns, p.from), out: p.lines.join('\n') };
}

async function waitBound(ns: string, p: { from: number }, what = 'bound'): Promise<ClientEvent> {
  let hit: ClientEvent | undefined;
  await waitUntil(() => (hit = events(ns, p.from).find((e) => e.event === what)) !== undefined, `${ns} ${what}`, 15_000);
  return hit!;
}

const resetClients = (): void => { for (const ns of CLIENTS) ip('-n', ns, 'addr', 'flush', 'dev', 'eth0'); };
const stateFile = (name: string): string => path.join(tmp, `${name}.json`);
const inRange = (a: string, lo: number, hi: number): boolean => a.startsWith('10.77.0.') && Number(a.split('.')[3]) >= lo && Number(a.split('.')[3]) <= hi;

// --- the hand-made client ---

type CraftStep = { send: DhcpRequestPacket & { extra?: Record<number, unknown> }; to?: string } | { raw: string; to?: string } | { await: number };

async function craft(steps: CraftStep[]): Promise<DhcpReplyPacket[]> {
  const withTo = steps.map((s) => ('await' in s ? s : { to: '10.77.0.255', ...s }));
  const proc = start('ip', ['netns', 'exec', CRAFT, process.execPath, '--import', 'tsx', 'test/fixtures/dhcp-craft.ts', JSON.stringify(withTo)]);
  procs.push(proc);
  await proc.waitFor((l) => jsonLine(l)?.event === 'done', 'the crafted exchange');
  return proc.lines.map(jsonLine).filter((j) => j?.event === 'reply') as unknown as DhcpReplyPacket[];
}

const pkt = (type: DhcpRequestPacket['type'], xid: number, mac: string, extra: Partial<DhcpRequestPacket> = {}): DhcpRequestPacket =>
  ({ type, xid, flags: 0, ciaddr: '0.0.0.0', giaddr: '0.0.0.0', mac, ...extra });

// --- the cases ---

t.test('a client gets an address in the range with the router, DNS, domain and lease time configured', async (t) => {
  resetClients();
  const s = await startServer(cfg({ gateway: '10.77.0.254', dns: ['10.77.0.53', '10.77.0.54'], domain: 'lan.test' }), stateFile('options'));
  const r = await udhcpcOnce(C1);
  t.equal(r.code, 0, 'udhcpc got a lease');
  const bound = r.events.find((e) => e.event === 'bound');
  t.ok(bound && inRange(bound.ip!, 10, 20), `address ${bound?.ip} in 10.77.0.10-20`);
  t.match(bound, { mask: '24', router: '10.77.0.254', dns: '10.77.0.53 10.77.0.54', domain: 'lan.test', lease: '600', serverid: SERVER });
  t.match((await inspect(s)).leases, [{ ip: bound?.ip, mac: MAC[C1], state: 'bound' }]);
  await stopServer(s);
  t.match(JSON.parse(fs.readFileSync(s.state, 'utf8')), { version: 1, leases: [{ ip: bound?.ip, mac: MAC[C1], state: 'bound' }] }, 'the lease file');
});

t.test('a full pool: the third client gets nothing, the server keeps answering, then stops on SIGTERM', async (t) => {
  resetClients();
  const s = await startServer(cfg({ rangeEnd: '10.77.0.11' }), stateFile('full'));
  const c1 = udhcpc(C1, '-R', '-t', '3', '-T', '1');
  const a1 = (await waitBound(C1, c1)).ip;
  const a2 = (await udhcpcOnce(C2)).events.find((e) => e.event === 'bound')?.ip;
  t.same([a1, a2].sort(), ['10.77.0.10', '10.77.0.11'], 'two clients, two different addresses');
  const third = await udhcpcOnce(C3);
  t.not(third.code, 0, 'udhcpc gave up');
  t.same(third.events.filter((e) => e.event === 'bound'), [], 'no lease for the third client');
  const snap = await inspect(s);
  t.equal(snap.status.leases, 2);
  t.ok((snap.counters.outcomes['pool-full'] ?? 0) >= 1, 'its DISCOVERs were counted as pool-full');
  c1.child.kill('SIGTERM'); // -R: udhcpc releases its lease on the way out
  await c1.exited;
  await logged(s, 'DHCP release', { mac: MAC[C1] });
  const again = await udhcpcOnce(C3);
  t.equal(again.events.find((e) => e.event === 'bound')?.ip, a1, 'the released address goes to the third client');
  await stopServer(s);
  t.pass('stopped on SIGTERM');
});

t.test('RELEASE: udhcpc -R gives its address back and another client gets it', async (t) => {
  resetClients();
  const s = await startServer(cfg({ rangeEnd: '10.77.0.10' }), stateFile('release'));
  const c1 = udhcpc(C1, '-R', '-t', '3', '-T', '1');
  t.equal((await waitBound(C1, c1)).ip, '10.77.0.10');
  c1.child.kill('SIGTERM');
  await c1.exited;
  await logged(s, 'DHCP release', { mac: MAC[C1] });
  t.same((await inspect(s)).leases, [], 'the lease is gone');
  const r = await udhcpcOnce(C2);
  t.equal(r.events.find((e) => e.event === 'bound')?.ip, '10.77.0.10', 'the one address of the pool, again');
  await stopServer(s);
});

t.test('DECLINE: udhcpc -a finds the offered address in use, declines it and gets another', async (t) => {
  resetClients();
  ip('-n', SQUAT, 'addr', 'add', '10.77.0.10/24', 'dev', 'eth0'); // a host the server knows nothing of
  t.teardown(() => ip('-n', SQUAT, 'addr', 'flush', 'dev', 'eth0'));
  const s = await startServer(cfg({ rangeEnd: '10.77.0.12' }), stateFile('decline'));
  const r = await udhcpcOnce(C1, '-a500', '-A', '1', '-t', '3');
  t.equal(r.code, 0, 'udhcpc got a lease');
  t.match(r.out, /offered address is in use \(got ARP reply\), declining/);
  t.same(r.events.map((e) => [e.event, e.ip]), [['bound', '10.77.0.11']], 'bound to the next address only');
  await logged(s, 'DHCP decline', { mac: MAC[C1] });
  t.match((await inspect(s)).leases, [{ ip: '10.77.0.10', state: 'declined' }, { ip: '10.77.0.11', mac: MAC[C1], state: 'bound' }]);
  const r2 = await udhcpcOnce(C2);
  t.equal(r2.events.find((e) => e.event === 'bound')?.ip, '10.77.0.12', 'the declined address is not offered to others');
  await stopServer(s);
});

t.test('expiry: a client that stops renewing loses its lease and the address returns to the pool', async (t) => {
  resetClients();
  const s = await startServer(cfg({ rangeEnd: '10.77.0.10', leaseSeconds: 3 }), stateFile('expiry'));
  const c1 = udhcpc(C1, '-t', '3', '-T', '1');
  t.equal((await waitBound(C1, c1)).ip, '10.77.0.10');
  c1.child.kill('SIGKILL');
  await c1.exited;
  t.match((await inspect(s)).leases, [{ ip: '10.77.0.10', mac: MAC[C1], state: 'bound' }], 'held until it expires');
  let got: string | undefined;
  await waitUntil(async () => (got = (await udhcpcOnce(C2, '-t', '1')).events.find((e) => e.event === 'bound')?.ip) !== undefined, 'the second client to get a lease', 20_000);
  t.equal(got, '10.77.0.10', 'the one address of the pool went to the second client');
  await logged(s, 'DHCP lease expired', { ip: '10.77.0.10', mac: MAC[C1] });
  await stopServer(s);
});

t.test('a foreign address: udhcpc -r 10.99.0.5 gets one in our range; an INIT-REBOOT for it gets a NAK', async (t) => {
  resetClients();
  const s = await startServer(cfg(), stateFile('foreign'));
  // busybox udhcpc asks for its -r address in a DISCOVER (it has no INIT-REBOOT state), so no NAK here.
  const r = await udhcpcOnce(C1, '-r', '10.99.0.5');
  const bound = r.events.find((e) => e.event === 'bound');
  t.ok(bound && inRange(bound.ip!, 10, 20), `given ${bound?.ip}, in range`);
  const mac = '02:00:00:00:00:aa';
  const replies = await craft([
    { send: pkt('REQUEST', 101, mac, { requestedIp: '10.99.0.5' }) }, { await: 101 },
    { send: pkt('DISCOVER', 102, mac) }, { await: 102 },
  ]);
  t.match(replies, [
    { type: 'NAK', xid: 101, yiaddr: '0.0.0.0', options: { serverId: SERVER, message: '10.99.0.5 is not on this network' } },
    { type: 'OFFER', xid: 102, options: { serverId: SERVER } },
  ]);
  t.ok(inRange(replies[1]?.yiaddr ?? '', 10, 20), 'then an offer in the range');
  await stopServer(s);
});

t.test('a real client renewing an address the server now gives to another gets a NAK, then a lease', async (t) => {
  resetClients();
  const c1Server = await startServer(cfg(), stateFile('nak-1'));
  const c1 = udhcpc(C1, '-t', '3', '-T', '1');
  t.equal((await waitBound(C1, c1)).ip, '10.77.0.10');
  await stopServer(c1Server);
  // A server that lost its leases (a new file) gives 10.77.0.10 to another client first.
  const s = await startServer(cfg(), stateFile('nak-2'));
  t.equal((await udhcpcOnce(C2)).events.find((e) => e.event === 'bound')?.ip, '10.77.0.10');
  c1.child.kill('SIGUSR1'); // renew now (busybox stretches any lease under 122 s to 122 s)
  await waitBound(C1, c1, 'nak');
  const after = await waitBound(C1, { from: allEvents(C1).findIndex((e, i) => i >= c1.from && e.event === 'nak') }, 'bound');
  t.equal(after.ip, '10.77.0.11', 'after the NAK it starts over and gets a free address');
  c1.child.kill('SIGKILL');
  await stopServer(s);
});

t.test('another server on the wire (busybox udhcpd): a client that chose it gets no answer from us', async (t) => {
  resetClients();
  const s = await startServer(cfg({ rangeEnd: '10.77.0.10' }), stateFile('udhcpd'));
  t.equal((await udhcpcOnce(C2)).events.find((e) => e.event === 'bound')?.ip, '10.77.0.10', 'our one address is taken');
  // With our pool full the client can only take udhcpd's offer; its REQUEST (broadcast) names 10.77.0.2.
  ip('-n', SQUAT, 'addr', 'add', '10.77.0.2/24', 'dev', 'eth0');
  t.teardown(() => ip('-n', SQUAT, 'addr', 'flush', 'dev', 'eth0'));
  const conf = path.join(tmp, 'udhcpd.conf');
  fs.writeFileSync(conf, ['start 10.77.0.100', 'end 10.77.0.110', 'interface eth0', `lease_file ${tmp}/udhcpd.leases`,
    `pidfile ${tmp}/udhcpd.pid`, 'option subnet 255.255.255.0', 'option lease 600', ''].join('\n'));
  const other = start('ip', ['netns', 'exec', SQUAT, 'busybox', 'udhcpd', '-f', '-a', '100', conf]);
  procs.push(other);
  const r = await udhcpcOnce(C1, '-t', '4');
  t.match(r.events.find((e) => e.event === 'bound'), { serverid: '10.77.0.2' }, 'the client took udhcpd\'s lease');
  const snap = await inspect(s);
  t.ok((snap.counters.outcomes['other-server'] ?? 0) >= 1, 'we saw its REQUEST to 10.77.0.2');
  t.equal(snap.counters.outcomes.nak, undefined, 'and sent no NAK');
  t.equal(snap.counters.outcomes.bind, 1, 'nor an ACK (one bind: the second client\'s)');
  other.child.kill('SIGTERM');
  await other.exited;
  await stopServer(s);
});

t.test('a REQUEST naming another server gets no answer and withdraws our offer', async (t) => {
  const s = await startServer(cfg({ rangeEnd: '10.77.0.10' }), stateFile('other'));
  const [x, y] = ['02:00:00:00:00:b1', '02:00:00:00:00:b2'];
  const replies = await craft([
    { send: pkt('DISCOVER', 201, x) }, { await: 201 },
    { send: pkt('REQUEST', 202, x, { requestedIp: '10.77.0.10', serverId: '10.77.0.2' }) },
    // Packets are answered in order: by the time 203 is answered, 202 would have been.
    { send: pkt('DISCOVER', 203, y) }, { await: 203 },
  ]);
  t.match(replies, [{ type: 'OFFER', xid: 201, yiaddr: '10.77.0.10' }, { type: 'OFFER', xid: 203, yiaddr: '10.77.0.10' }]);
  t.equal(replies.length, 2, 'nothing for the REQUEST to 10.77.0.2, and its offer went to the next client');
  t.equal((await inspect(s)).counters.outcomes['other-server'], 1);
  await stopServer(s);
});

t.test('bad packets are counted and ignored, and the server keeps serving', async (t) => {
  const s = await startServer(cfg(), stateFile('bad'));
  const mac = '02:00:00:00:00:c1';
  const good = pkt('DISCOVER', 301, mac);
  const reply = encodeReply({ type: 'OFFER', xid: 300, flags: 0, ciaddr: '0.0.0.0', yiaddr: '10.77.0.10', giaddr: '0.0.0.0', mac, options: { serverId: '10.77.0.2' } });
  const replies = await craft([
    { raw: 'deadbeef' },
    { raw: reply.toString('hex') },
    { raw: '0106' + reply.toString('hex').slice(4) },
    { send: { ...good, xid: 300, extra: { 50: '10.77.0.10' } }, to: '10.77.0.255' },
    { raw: 'ff'.repeat(300) },
    { send: good }, { await: 301 },
  ]);
  t.match(replies, [{ type: 'OFFER', xid: 300 }, { type: 'OFFER', xid: 301 }], 'only the two DISCOVERs were answered');
  t.equal(replies.length, 2);
  const snap = await inspect(s);
  t.equal(snap.counters.malformed, 4);
  t.equal(snap.counters.received, 6);
  await stopServer(s);
});

t.test('restart: the lease survives in the lease file; its client renews it and nobody else gets it', async (t) => {
  resetClients();
  const state = stateFile('restart');
  const first = await startServer(cfg({ rangeEnd: '10.77.0.11', leaseSeconds: 6 }), state);
  const c1 = udhcpc(C1, '-t', '3', '-T', '1');
  t.equal((await waitBound(C1, c1)).ip, '10.77.0.10');
  await stopServer(first);
  const second = await startServer(cfg({ rangeEnd: '10.77.0.11', leaseSeconds: 6 }), state);
  t.match((await inspect(second)).leases, [{ ip: '10.77.0.10', mac: MAC[C1], state: 'bound' }], 'restored');
  c1.child.kill('SIGUSR1'); // renew now (busybox stretches any lease under 122 s to 122 s)
  const renewed = await waitBound(C1, c1, 'renew');
  t.equal(renewed.ip, '10.77.0.10', 'the client renewed its address with the new process');
  t.equal((await udhcpcOnce(C2)).events.find((e) => e.event === 'bound')?.ip, '10.77.0.11', 'a new client gets another address');
  c1.child.kill('SIGKILL');
  await stopServer(second);
});

t.test('start-up: errors name the port and the field, and an unreadable lease file is kept aside', async (t) => {
  t.equal(await startError(cfg({ rangeStart: '10.88.0.10' }), stateFile('bad-config')),
    'DHCP server on eth0: dhcpServer.rangeStart: 10.88.0.10 is outside the port\'s subnet 10.77.0.0/24');
  const state = stateFile('corrupt');
  fs.writeFileSync(state, '{"version": 1, "leases": [');
  const s = await startServer(cfg(), state);
  await logged(s, 'DHCP lease file unreadable: moved aside, starting with no leases');
  const aside = fs.readdirSync(tmp).filter((f) => f.startsWith('corrupt.json.bad-'));
  t.equal(aside.length, 1, 'moved aside');
  t.equal(fs.readFileSync(path.join(tmp, aside[0]!), 'utf8'), '{"version": 1, "leases": [', 'as it was');
  t.match(await startError(cfg(), stateFile('second')), /^DHCP server on eth0: cannot listen on UDP port 67: .*EADDRINUSE/, 'a second server on the same port');
  await stopServer(s);
});
