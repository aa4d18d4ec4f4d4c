// nim's DHCP lease table against RFC 2131's server rules, with crafted client messages and a
// clock the test moves: offers, the four kinds of REQUEST, RELEASE, DECLINE, INFORM, expiry,
// a full pool, persistence, and "no address bound to two clients" over random traffic.
import t from 'tap';
import { DhcpConfigError, LeaseTable, type ClientMessage, type Decision } from '../../agents/nim/dhcp-leases';
import type { DhcpServerConfig } from '../../pubsub/collections/network';

const ADDRESS = '10.77.0.1/24';
const SERVER = '10.77.0.1';
const cfg = (over: Partial<DhcpServerConfig> = {}): DhcpServerConfig =>
  ({ rangeStart: '10.77.0.10', rangeEnd: '10.77.0.12', leaseSeconds: 600, ...over });
const mac = (n: number): string => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const ZERO = '0.0.0.0';

const discover = (n: number, extra: Partial<ClientMessage> = {}): ClientMessage => ({ type: 'DISCOVER', mac: mac(n), ciaddr: ZERO, ...extra });
const select = (n: number, ip: string, serverId = SERVER): ClientMessage => ({ type: 'REQUEST', mac: mac(n), ciaddr: ZERO, requestedIp: ip, serverId });
const reboot = (n: number, ip: string): ClientMessage => ({ type: 'REQUEST', mac: mac(n), ciaddr: ZERO, requestedIp: ip });
const renew = (n: number, ip: string): ClientMessage => ({ type: 'REQUEST', mac: mac(n), ciaddr: ip });
const release = (n: number, ip: string): ClientMessage => ({ type: 'RELEASE', mac: mac(n), ciaddr: ip, serverId: SERVER });
const decline = (n: number, ip: string): ClientMessage => ({ type: 'DECLINE', mac: mac(n), ciaddr: ZERO, requestedIp: ip, serverId: SERVER });

/** DISCOVER then REQUEST of what was offered: the client's bound address. */
function lease(table: LeaseTable, n: number, now: number): string {
  const offer = table.handle(discover(n), now);
  const ack = table.handle(select(n, offer.yiaddr), now);
  if (ack.reply !== 'ACK') throw new Error(`client ${n} got ${ack.reply}: ${ack.detail}`);
  return ack.yiaddr;
}

t.test('a configuration that cannot serve is refused, naming the field', async (t) => {
  const refused = (address: string, c: DhcpServerConfig, field: RegExp): void => {
    try {
      new LeaseTable(address, c);
      t.fail(`accepted: ${field}`);
    } catch (e) {
      t.ok(e instanceof DhcpConfigError, 'a DhcpConfigError');
      t.match((e as Error).message, field);
    }
  };
  refused(ADDRESS, cfg({ rangeStart: '10.88.0.10' }), /^dhcpServer\.rangeStart: 10\.88\.0\.10 is outside the port's subnet 10\.77\.0\.0\/24/);
  refused(ADDRESS, cfg({ rangeEnd: '10.77.0.5' }), /^dhcpServer\.rangeEnd: 10\.77\.0\.5 comes before rangeStart/);
  refused(ADDRESS, cfg({ rangeEnd: '10.77.0.300' }), /^dhcpServer\.rangeEnd: "10\.77\.0\.300" is not an IPv4 address/);
  refused('10.77.0.1', cfg(), /^address: "10\.77\.0\.1" is not an IPv4 address with a prefix length/);
  refused('10.77.0.1/31', cfg(), /^address: .*\/31 network/);
  refused(ADDRESS, cfg({ leaseSeconds: 0 }), /^dhcpServer\.leaseSeconds: 0 is not a positive/);
  refused(ADDRESS, cfg({ dns: ['10.77.0.53', 'resolver'] }), /^dhcpServer\.dns: "resolver" is not an IPv4 address/);
  refused(ADDRESS, cfg({ rangeStart: SERVER, rangeEnd: SERVER }), /^dhcpServer: the range 10\.77\.0\.1-10\.77\.0\.1 holds no address/);
});

t.test('the pool is the range without the server, network and broadcast addresses', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ rangeStart: '10.77.0.0', rangeEnd: '10.77.0.2' }));
  t.equal(table.poolSize, 1);
  t.equal(lease(table, 1, 0), '10.77.0.2');
  t.equal(table.handle(discover(2), 0).outcome, 'pool-full');
  t.equal(new LeaseTable(ADDRESS, cfg()).poolSize, 3);
  // A /8 pool: sizing it does not scan it.
  t.equal(new LeaseTable('10.0.0.1/8', cfg({ rangeStart: '10.0.0.2', rangeEnd: '10.255.255.254' })).poolSize, 0xfffffd);
});

t.test('DISCOVER: the OFFER carries the options and reserves the lowest free address', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ domain: 'lan.test' }));
  const offer = table.handle(discover(1), 0);
  t.match(offer, { reply: 'OFFER', yiaddr: '10.77.0.10', outcome: 'offer', persist: false });
  t.same(offer.options, {
    serverId: SERVER, subnetMask: '255.255.255.0', router: [SERVER], dns: [SERVER], domain: 'lan.test',
    broadcast: '10.77.0.255', leaseSeconds: 600, renewalSeconds: 300, rebindingSeconds: 525,
  }, 'router and DNS default to the server, T1 and T2 are 1/2 and 7/8 of the lease');
  t.equal(table.handle(discover(2), 0).yiaddr, '10.77.0.11', 'the offered address is reserved');
  t.equal(table.handle(discover(1), 30_000).yiaddr, '10.77.0.10', 'the same client is offered the same address again');
  t.equal(table.handle(discover(3), 75_000).yiaddr, '10.77.0.11', 'an offer not taken up is free again after 60 s (the renewed one holds)');
  const custom = new LeaseTable(ADDRESS, cfg({ gateway: '10.77.0.254', dns: ['9.9.9.9', '10.77.0.53'] })).handle(discover(1), 0);
  t.match(custom.options, { router: ['10.77.0.254'], dns: ['9.9.9.9', '10.77.0.53'] });
});

t.test('DISCOVER: the requested address is offered when in the pool and free', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  t.equal(table.handle(discover(1, { requestedIp: '10.77.0.12' }), 0).yiaddr, '10.77.0.12');
  t.equal(table.handle(discover(2, { requestedIp: '10.77.0.12' }), 0).yiaddr, '10.77.0.10', 'taken: the lowest free instead');
  t.equal(table.handle(discover(3, { requestedIp: '10.99.0.5' }), 0).yiaddr, '10.77.0.11', 'outside the pool: the lowest free');
});

t.test('DISCOVER: a client is offered its previous address while it is free', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  lease(table, 1, 0);
  const ip2 = lease(table, 2, 0);
  t.equal(table.handle(release(2, ip2), 1000).outcome, 'release');
  t.equal(table.handle(discover(2), 2000).yiaddr, ip2, 'after a release');
  const expiring = new LeaseTable(ADDRESS, cfg({ leaseSeconds: 10 }));
  lease(expiring, 1, 0);
  const ip = lease(expiring, 2, 0);
  t.equal(expiring.handle(discover(2, { requestedIp: '10.77.0.12' }), 60_000).yiaddr, ip, 'after expiry, before what it asks for');
});

t.test('a full pool means no OFFER, with a reason, as often as clients ask', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ rangeEnd: '10.77.0.11' }));
  lease(table, 1, 0);
  lease(table, 2, 0);
  for (let i = 0; i < 1000; i++) {
    const d = table.handle(discover(3), i);
    if (d.reply !== 'none' || d.outcome !== 'pool-full') return t.fail(`try ${i}: ${JSON.stringify(d)}`);
  }
  t.match(table.handle(discover(3), 0), { reply: 'none', outcome: 'pool-full', detail: 'all 2 addresses of 10.77.0.10-10.77.0.11 are taken' });
  t.equal(table.handle(release(1, '10.77.0.10'), 1).outcome, 'release');
  t.equal(table.handle(discover(3), 2).yiaddr, '10.77.0.10', 'a released address goes to the client left out');
});

t.test('REQUEST (SELECTING) naming another server: silent, and the offer is withdrawn', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ rangeEnd: '10.77.0.10' }));
  table.handle(discover(1), 0);
  const d = table.handle(select(1, '10.77.0.10', '10.77.0.2'), 0);
  t.match(d, { reply: 'none', outcome: 'other-server' });
  t.same(table.leases(0), [], 'nothing reserved for the client any more');
  t.equal(table.handle(discover(2), 0).yiaddr, '10.77.0.10', 'another client is offered it');
});

t.test('REQUEST (SELECTING) naming us: ACK what was offered or is free, NAK what is taken', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  table.handle(discover(1), 0);
  const ack = table.handle(select(1, '10.77.0.10'), 0);
  t.match(ack, { reply: 'ACK', yiaddr: '10.77.0.10', outcome: 'bind', persist: true, options: { leaseSeconds: 600, serverId: SERVER } });
  t.match(table.handle(select(2, '10.77.0.12'), 0), { reply: 'ACK', yiaddr: '10.77.0.12' }, 'free but not offered: ACK');
  const nak = table.handle(select(3, '10.77.0.10'), 0);
  t.match(nak, { reply: 'NAK', yiaddr: ZERO, outcome: 'nak', options: { serverId: SERVER, message: '10.77.0.10 is not available' } });
  t.notOk('leaseSeconds' in (nak.options ?? {}), 'a NAK carries no lease');
  t.match(table.handle(select(3, '10.77.0.99'), 0), { reply: 'NAK' }, 'outside the pool');
  t.match(table.handle({ type: 'REQUEST', mac: mac(3), ciaddr: ZERO, serverId: SERVER }, 0), { reply: 'NAK' }, 'no address asked for');
});

t.test('REQUEST (INIT-REBOOT): NAK for another network or another client\'s address, ACK our own, silent otherwise', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  const ip1 = lease(table, 1, 0);
  t.match(table.handle(reboot(2, '10.99.0.5'), 0), { reply: 'NAK', detail: '10.99.0.5 is not on this network' });
  t.match(table.handle(reboot(2, '10.77.0.255'), 0), { reply: 'NAK' }, 'the broadcast address');
  t.match(table.handle(reboot(2, ip1), 0), { reply: 'NAK', detail: `${ip1} is held by another client` });
  t.match(table.handle(reboot(2, SERVER), 0), { reply: 'NAK' }, 'the server\'s own address');
  t.match(table.handle(reboot(1, ip1), 100_000), { reply: 'ACK', yiaddr: ip1, outcome: 'bind' });
  t.equal(table.leases(0)[0]?.expiresAt, 700_000, 'the lease runs from the reboot');
  t.match(table.handle(reboot(2, '10.77.0.11'), 0), { reply: 'none', outcome: 'unknown-client' }, 'RFC 2131 §4.3.2');
  t.same(table.leases(0).map((l) => l.ip), [ip1], 'the silence reserved nothing');
});

t.test('REQUEST (RENEWING/REBINDING): ACK by unicast for the client\'s lease, NAK otherwise', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ leaseSeconds: 100 }));
  const ip1 = lease(table, 1, 0);
  const ip2 = lease(table, 2, 0);
  t.match(table.handle(renew(1, ip1), 50_000), { reply: 'ACK', yiaddr: ip1, unicast: ip1, outcome: 'renew', persist: true });
  t.equal(table.leases(0).find((l) => l.ip === ip1)?.expiresAt, 150_000, 'extended');
  t.match(table.handle(renew(1, ip2), 50_000), { reply: 'NAK' }, 'another client\'s address');
  t.match(table.handle(renew(1, '10.99.0.5'), 50_000), { reply: 'NAK' }, 'another network');
  t.match(table.handle(renew(3, '10.77.0.12'), 50_000), { reply: 'NAK' }, 'in our pool, leased to nobody');
  t.match(table.handle(renew(3, '10.77.0.200'), 50_000), { reply: 'none', outcome: 'unknown-client' }, 'outside our pool: maybe another server\'s');
  t.match(table.handle(renew(2, ip2), 101_000), { reply: 'NAK' }, 'a renewal after the lease expired');
});

t.test('RELEASE frees the client\'s own lease only', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  const ip1 = lease(table, 1, 0);
  t.match(table.handle(release(2, ip1), 0), { reply: 'none', outcome: 'not-owner', persist: false });
  t.equal(table.boundCount(0), 1);
  t.match(table.handle({ ...release(1, ip1), serverId: '10.77.0.2' }, 0), { outcome: 'other-server' });
  t.match(table.handle(release(1, ip1), 0), { reply: 'none', outcome: 'release', persist: true });
  t.equal(table.boundCount(0), 0);
  t.equal(table.handle(discover(2), 0).yiaddr, ip1, 'free for anyone');
});

t.test('DECLINE keeps the address out of the pool for a while and frees the client', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg(), { declineSeconds: 600 });
  const ip = lease(table, 1, 0);
  t.match(table.handle(decline(2, ip), 0), { outcome: 'not-owner' }, 'only the client it was given to can decline it');
  t.match(table.handle(decline(1, ip), 0), { reply: 'none', outcome: 'decline', persist: true });
  t.match(table.leases(0), [{ ip, state: 'declined' }]);
  t.equal(table.handle(discover(1), 1000).yiaddr, '10.77.0.11', 'the client is offered another address');
  t.equal(table.handle(discover(2), 1000).yiaddr, '10.77.0.12');
  t.equal(table.handle(discover(3), 1000).outcome, 'pool-full', 'the declined address is not offered');
  t.equal(table.handle(discover(3), 601_000).yiaddr, ip, 'after 10 minutes it is back (the other offers lapsed too)');
});

t.test('INFORM gets the options and no lease, by unicast', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ dns: ['10.77.0.53'] }));
  const d = table.handle({ type: 'INFORM', mac: mac(9), ciaddr: '10.77.0.200' }, 0);
  t.match(d, { reply: 'ACK', yiaddr: ZERO, unicast: '10.77.0.200', outcome: 'inform', options: { dns: ['10.77.0.53'], subnetMask: '255.255.255.0' } });
  t.notOk('leaseSeconds' in (d.options ?? {}) || 'renewalSeconds' in (d.options ?? {}), 'no lease time');
  t.equal(table.leases(0).length, 0);
  t.match(table.handle({ type: 'INFORM', mac: mac(9), ciaddr: '10.99.0.5' }, 0), { reply: 'none', outcome: 'foreign-inform' });
});

t.test('a lease expires and its address returns to the pool', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ rangeEnd: '10.77.0.10', leaseSeconds: 60 }));
  const ip = lease(table, 1, 0);
  t.equal(table.handle(discover(2), 59_999).outcome, 'pool-full');
  t.same(table.expire(59_999), []);
  t.match(table.expire(60_000), [{ ip, mac: mac(1), state: 'bound' }], 'expire() names what expired');
  t.equal(table.boundCount(60_000), 0);
  t.equal(table.handle(discover(2), 60_000).yiaddr, ip);
});

t.test('option 61 names the client, not its hardware address', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  const a = table.handle(discover(1, { clientId: '01020000000001' }), 0);
  t.equal(table.handle(discover(2, { clientId: '01020000000001' }), 0).yiaddr, a.yiaddr, 'same id, another card: same client');
  t.not(table.handle(discover(1, { clientId: '01020000000002' }), 0).yiaddr, a.yiaddr, 'same card, another id: another client');
  t.match(table.leases(0)[0], { clientId: '01020000000001' });
});

t.test('relayed packets and server messages from clients get no answer', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  t.match(table.handle(discover(1, { giaddr: '10.5.0.1' }), 0), { reply: 'none', outcome: 'relayed' });
  t.match(table.handle({ type: 'OFFER', mac: mac(1), ciaddr: ZERO }, 0), { reply: 'none', outcome: 'unexpected-type' });
  t.match(table.handle({ type: 'REQUEST', mac: mac(1), ciaddr: ZERO }, 0), { reply: 'none', outcome: 'no-address' });
  t.same(table.leases(0), []);
});

t.test('snapshot and restore: bound and declined kept, offers and expired leases dropped', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg({ leaseSeconds: 100 }), { declineSeconds: 1000 });
  const ip1 = lease(table, 1, 0);
  const ip2 = lease(table, 2, 50_000);
  table.handle(decline(2, ip2), 50_000);
  table.handle(discover(3), 60_000);
  const snap = JSON.parse(JSON.stringify(table.snapshot(60_000))) as unknown;
  t.match(snap, { version: 1, leases: [{ ip: ip1, client: `hw:${mac(1)}`, state: 'bound', expiresAt: new Date(100_000).toISOString() }, { ip: ip2, state: 'declined' }] });
  const back = new LeaseTable(ADDRESS, cfg({ leaseSeconds: 100 }));
  t.same(back.restore(snap, 60_000), { kept: 2, expired: 0, problems: [] });
  t.equal(back.handle(discover(3), 60_000).yiaddr, '10.77.0.12', 'neither restored address is offered');
  t.match(back.handle(renew(1, ip1), 60_000), { reply: 'ACK' }, 'the restored lease renews');
  const later = new LeaseTable(ADDRESS, cfg({ leaseSeconds: 100 }));
  t.same(later.restore(snap, 200_000), { kept: 1, expired: 1, problems: [] }, 'the bound lease had expired');
  t.equal(later.handle(discover(1), 200_000).yiaddr, ip1, 'its client is still offered its previous address');
});

t.test('restore names what it cannot keep and refuses what is not a snapshot', async (t) => {
  const table = new LeaseTable(ADDRESS, cfg());
  const at = new Date(1_000_000).toISOString();
  const r = table.restore({
    version: 1,
    previous: [],
    leases: [
      { ip: '10.77.0.10', client: 'hw:a', mac: 'a', state: 'bound', expiresAt: at },
      { ip: '10.77.0.10', client: 'hw:b', mac: 'b', state: 'bound', expiresAt: at },
      { ip: '10.77.0.99', client: 'hw:c', mac: 'c', state: 'bound', expiresAt: at },
      { ip: 'ten', client: 'hw:d', mac: 'd', state: 'bound', expiresAt: at },
      { ip: '10.77.0.11', client: 'hw:e', mac: 'e', state: 'offered', expiresAt: at },
      { ip: '10.77.0.12', client: 'hw:f', mac: 'f', state: 'bound', expiresAt: 'soon' },
    ],
  }, 0);
  t.same(r.problems, [
    'leases[1].ip: 10.77.0.10 appears twice (the first is kept)',
    'leases[2].ip: 10.77.0.99 is outside the pool 10.77.0.10-10.77.0.12 (dropped)',
    'leases[3].ip: "ten" is not an IPv4 address',
    'leases[4].state: "offered" is not bound or declined',
    'leases[5].expiresAt: "soon" is not a time',
  ]);
  t.equal(r.kept, 1);
  for (const bad of [null, [], { version: 2, leases: [], previous: [] }, { version: 1 }]) {
    t.throws(() => table.restore(bad, 0), /^lease file: is not a version 1 lease snapshot/);
  }
});

t.test('no address is ever bound to two clients, over random traffic', async (t) => {
  let seed = 12345;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  const table = new LeaseTable(ADDRESS, cfg({ rangeEnd: '10.77.0.14', leaseSeconds: 30 }), { offerSeconds: 5, declineSeconds: 20 });
  const ips = ['10.77.0.10', '10.77.0.11', '10.77.0.12', '10.77.0.13', '10.77.0.14', '10.77.0.99', '10.99.0.5'];
  /** What clients were told: address → holder and until when (from ACKs, RELEASEs and DECLINEs). */
  const held = new Map<string, { client: number; until: number }>();
  let now = 0;
  let acks = 0;
  for (let step = 0; step < 20_000; step++) {
    now += rnd(2000);
    const c = rnd(9);
    const ip = ips[rnd(ips.length)]!;
    const m: ClientMessage = [
      discover(c), select(c, ip), select(c, ip, '10.77.0.2'), reboot(c, ip), renew(c, ip), release(c, ip), decline(c, ip),
    ][rnd(7)]!;
    const d: Decision = table.handle(m, now);
    if (d.reply === 'ACK') {
      acks += 1;
      const h = held.get(d.yiaddr);
      if (h && h.client !== c && h.until > now) return t.fail(`step ${step}: ${d.yiaddr} ACKed to client ${c} while client ${h.client} holds it until ${h.until}`);
      // A client has one lease: asking for another address gives up the one it had.
      for (const [ip, h2] of held) if (h2.client === c) held.delete(ip);
      held.set(d.yiaddr, { client: c, until: now + 30_000 });
    }
    if (d.outcome === 'release' || d.outcome === 'decline') held.delete(m.type === 'RELEASE' ? m.ciaddr : m.requestedIp!);
    const mine = table.leases(now).filter((l) => l.mac === mac(c) && l.state !== 'declined');
    if (mine.length > 1) return t.fail(`step ${step}: client ${c} holds ${mine.map((l) => l.ip).join(', ')}`);
  }
  t.ok(acks > 500, `${acks} ACKs checked`);
});
