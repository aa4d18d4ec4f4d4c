// nim's DHCP lease table and RFC 2131 server decisions: pure, no I/O, the clock passed in.
// node-dhcp's own server is not used because of what this file is for: with a full pool it
// spins or crashes, it ignores RELEASE and DECLINE, never expires leases and ACKs REQUESTs
// meant for another server or another subnet. Here a full pool is a reason not to answer,
// every address is held by at most one binding (the table is keyed by address) and each
// client holds at most one binding.
import type { DhcpServerConfig } from '../../pubsub/collections/network';
import { DhcpConfigError, Subnet, intToIp, parseIp } from './dhcp-subnet';

export { DhcpConfigError } from './dhcp-subnet';

export type DhcpMessageType = 'DISCOVER' | 'OFFER' | 'REQUEST' | 'DECLINE' | 'ACK' | 'NAK' | 'RELEASE' | 'INFORM';

/** What the table needs from a client's packet (the codec's DhcpRequestPacket fits). */
export interface ClientMessage {
  type: DhcpMessageType;
  /** aa:bb:cc:dd:ee:ff */
  mac: string;
  /** Option 61 in hex: when present it names the client instead of its hardware address. */
  clientId?: string;
  ciaddr: string;
  giaddr?: string;
  requestedIp?: string;
  serverId?: string;
  hostname?: string;
}

/** The options a reply carries, by meaning. */
export interface ReplyOptions {
  serverId: string;
  subnetMask?: string;
  router?: string[];
  dns?: string[];
  domain?: string;
  broadcast?: string;
  leaseSeconds?: number;
  renewalSeconds?: number;
  rebindingSeconds?: number;
  /** Option 56, in a NAK. */
  message?: string;
}

/** What happened to a message: a reply sent, or why none was. */
export type Outcome =
  | 'offer' | 'bind' | 'renew' | 'inform' | 'nak' | 'release' | 'decline'
  | 'pool-full' | 'other-server' | 'unknown-client' | 'not-owner' | 'relayed' | 'unexpected-type' | 'no-address' | 'foreign-inform';

export interface Decision {
  reply: 'OFFER' | 'ACK' | 'NAK' | 'none';
  /** The client's address; 0.0.0.0 in a NAK, an INFORM's ACK or no reply. */
  yiaddr: string;
  options?: ReplyOptions;
  /** Send to the client's own address (RENEWING, INFORM) rather than the subnet's broadcast. */
  unicast?: string;
  outcome: Outcome;
  /** The table changed in a way that must survive a restart. */
  persist: boolean;
  /** Why, for a NAK or a silence (logged). */
  detail?: string;
}

export interface LeaseView {
  ip: string;
  mac: string;
  /** Option 61 in hex, when the client sent one. */
  clientId?: string;
  hostname?: string;
  state: 'offered' | 'bound' | 'declined';
  /** ms since the epoch. */
  expiresAt: number;
}

/** The persistent form (the driver writes it as JSON). Offers are not kept: they last a minute. */
export interface LeaseSnapshot {
  version: 1;
  leases: Array<{ ip: string; client: string; mac: string; hostname?: string; state: 'bound' | 'declined'; expiresAt: string }>;
  /** Address each client last held, offered to it again while still free. */
  previous: Array<[client: string, ip: string]>;
}

export interface LeaseTableOptions {
  /** How long an OFFER reserves its address. */
  offerSeconds?: number;
  /** How long a DECLINEd address stays out of the pool. */
  declineSeconds?: number;
}

interface Binding {
  ip: number;
  /** "id:<hex>" (option 61) or "hw:<mac>"; empty for a declined address. */
  client: string;
  mac: string;
  hostname?: string;
  state: 'offered' | 'bound' | 'declined';
  expiresAt: number;
}

const ZERO = '0.0.0.0';
const clientKey = (m: ClientMessage): string => (m.clientId ? `id:${m.clientId}` : `hw:${m.mac.toLowerCase()}`);
const none = (outcome: Outcome, persist: boolean, detail?: string): Decision =>
  ({ reply: 'none', yiaddr: ZERO, outcome, persist, ...(detail ? { detail } : {}) });

export class LeaseTable {
  readonly subnet: Subnet;
  private readonly leaseSeconds: number;
  private readonly offerMs: number;
  private readonly declineMs: number;
  private readonly baseOptions: ReplyOptions;
  private readonly byIp = new Map<number, Binding>();
  private readonly previous = new Map<string, number>();

  /** Throws DhcpConfigError naming the field when the configuration cannot serve. */
  constructor(address: string, config: DhcpServerConfig, opts: LeaseTableOptions = {}) {
    this.subnet = new Subnet(address, config);
    if (!Number.isInteger(config.leaseSeconds) || config.leaseSeconds < 1) {
      throw new DhcpConfigError('dhcpServer.leaseSeconds', `${config.leaseSeconds} is not a positive whole number of seconds`);
    }
    this.leaseSeconds = config.leaseSeconds;
    this.offerMs = (opts.offerSeconds ?? 60) * 1000;
    this.declineMs = (opts.declineSeconds ?? 600) * 1000;
    const server = this.subnet.serverIp;
    this.baseOptions = {
      serverId: server,
      subnetMask: this.subnet.mask,
      router: [config.gateway ?? server],
      dns: config.dns && config.dns.length > 0 ? [...config.dns] : [server],
      ...(config.domain ? { domain: config.domain } : {}),
      broadcast: this.subnet.broadcast,
    };
  }

  get poolSize(): number { return this.subnet.poolSize; }

  /** The answer to one client message at time `now` (ms). Never throws for any message. */
  handle(m: ClientMessage, now: number): Decision {
    this.expire(now);
    if (m.giaddr && m.giaddr !== ZERO) return none('relayed', false, `relayed by ${m.giaddr}: this server serves its own segment only`);
    switch (m.type) {
      case 'DISCOVER': return this.discover(m, now);
      case 'REQUEST': return this.request(m, now);
      case 'RELEASE': return this.release(m);
      case 'DECLINE': return this.decline(m, now);
      case 'INFORM': return this.inform(m);
      default: return none('unexpected-type', false, `a client does not send ${m.type}`);
    }
  }

  /** Drops what has expired and returns the bound leases that did (for the log). */
  expire(now: number): LeaseView[] {
    const gone: LeaseView[] = [];
    for (const [ip, b] of this.byIp) {
      if (b.expiresAt > now) continue;
      this.byIp.delete(ip);
      if (b.state === 'bound') { gone.push(view(b)); this.remember(b.client, ip); }
    }
    return gone;
  }

  /** Bound, offered and declined addresses, lowest first. */
  leases(now: number): LeaseView[] {
    this.expire(now);
    return [...this.byIp.values()].sort((a, b) => a.ip - b.ip).map(view);
  }

  /** Bound leases in force. */
  boundCount(now: number): number {
    this.expire(now);
    let n = 0;
    for (const b of this.byIp.values()) if (b.state === 'bound') n += 1;
    return n;
  }

  snapshot(now: number): LeaseSnapshot {
    this.expire(now);
    const leases: LeaseSnapshot['leases'] = [];
    for (const b of [...this.byIp.values()].sort((x, y) => x.ip - y.ip)) {
      if (b.state === 'offered') continue;
      leases.push({ ip: intToIp(b.ip), client: b.client, mac: b.mac, ...(b.hostname ? { hostname: b.hostname } : {}), state: b.state, expiresAt: new Date(b.expiresAt).toISOString() });
    }
    return { version: 1, leases, previous: [...this.previous].map(([c, ip]) => [c, intToIp(ip)]) };
  }

  /**
   * Replaces the table with a snapshot, dropping expired leases. Throws DhcpConfigError when it is not a
   * snapshot at all; an entry that cannot be kept (outside the pool since the range changed, a clash) is
   * dropped and named in the problems returned.
   */
  restore(snap: unknown, now: number): { kept: number; expired: number; problems: string[] } {
    const s = snap as Partial<LeaseSnapshot> | null;
    if (typeof s !== 'object' || s === null || s.version !== 1 || !Array.isArray(s.leases) || !Array.isArray(s.previous)) {
      throw new DhcpConfigError('lease file', 'is not a version 1 lease snapshot ({version: 1, leases: [...], previous: [...]})');
    }
    this.byIp.clear();
    this.previous.clear();
    const problems: string[] = [];
    let expired = 0;
    s.leases.forEach((e, i) => {
      const at = `leases[${i}]`;
      const ip = typeof e?.ip === 'string' ? parseIp(e.ip) : undefined;
      const expiresAt = typeof e?.expiresAt === 'string' ? Date.parse(e.expiresAt) : NaN;
      if (ip === undefined) return problems.push(`${at}.ip: ${JSON.stringify(e?.ip)} is not an IPv4 address`);
      if (e.state !== 'bound' && e.state !== 'declined') return problems.push(`${at}.state: ${JSON.stringify(e.state)} is not bound or declined`);
      if (typeof e.client !== 'string' || typeof e.mac !== 'string') return problems.push(`${at}: client and mac must be strings`);
      if (Number.isNaN(expiresAt)) return problems.push(`${at}.expiresAt: ${JSON.stringify(e.expiresAt)} is not a time`);
      if (expiresAt <= now) { expired += 1; return; }
      if (!this.subnet.inPool(ip)) return problems.push(`${at}.ip: ${e.ip} is outside the pool ${this.subnet.describePool()} (dropped)`);
      if (this.byIp.has(ip)) return problems.push(`${at}.ip: ${e.ip} appears twice (the first is kept)`);
      if (e.state === 'bound' && this.bindingOf(e.client)) return problems.push(`${at}.client: ${e.client} holds two addresses (the first is kept)`);
      this.byIp.set(ip, { ip, client: e.client, mac: e.mac, ...(typeof e.hostname === 'string' ? { hostname: e.hostname } : {}), state: e.state, expiresAt });
      return undefined;
    });
    for (const p of s.previous) {
      const ip = Array.isArray(p) && typeof p[0] === 'string' && typeof p[1] === 'string' ? parseIp(p[1]) : undefined;
      if (ip !== undefined && this.subnet.inPool(ip)) this.remember(p[0], ip);
    }
    return { kept: this.byIp.size, expired, problems };
  }

  // --- RFC 2131 §4.3 ---

  private discover(m: ClientMessage, now: number): Decision {
    const client = clientKey(m);
    const cur = this.bindingOf(client);
    if (cur) {
      if (cur.state === 'offered') cur.expiresAt = now + this.offerMs;
      return this.offer(cur.ip);
    }
    const ip = [this.previous.get(client), parseIp(m.requestedIp ?? '')].find((x) => x !== undefined && this.isFree(x)) ?? this.lowestFree();
    if (ip === undefined) return none('pool-full', false, `all ${this.poolSize} addresses of ${this.subnet.describePool()} are taken`);
    this.take(ip, client, m, 'offered', now + this.offerMs);
    return this.offer(ip);
  }

  private request(m: ClientMessage, now: number): Decision {
    const client = clientKey(m);
    const server = this.subnet.serverIp;
    if (m.serverId !== undefined) {
      // SELECTING: the client chose among offers; our offer to it is void when it chose another server.
      if (m.serverId !== server) {
        const offered = this.bindingOf(client);
        if (offered?.state === 'offered') this.byIp.delete(offered.ip);
        return none('other-server', false, `the client chose server ${m.serverId}`);
      }
      const ip = parseIp(m.requestedIp ?? (m.ciaddr !== ZERO ? m.ciaddr : ''));
      if (ip === undefined) return this.nak('no requested address (option 50) in a REQUEST to this server');
      const b = this.byIp.get(ip);
      if ((b && b.client === client && b.state !== 'declined') || (!b && this.subnet.inPool(ip))) return this.bind(ip, client, m, now);
      return this.nak(`${intToIp(ip)} is not available`);
    }
    if (m.ciaddr !== ZERO) {
      // RENEWING (unicast to us) or REBINDING (broadcast): the client already uses ciaddr.
      const ip = parseIp(m.ciaddr);
      if (ip === undefined || !this.subnet.contains(ip)) return this.nak(`${m.ciaddr} is not on this network`);
      const b = this.byIp.get(ip);
      if (b && b.client === client && b.state === 'bound') return { ...this.bind(ip, client, m, now), outcome: 'renew', unicast: m.ciaddr };
      // Outside our pool and unknown: another server on this wire may own it.
      if (!b && !this.subnet.inPool(ip) && ip !== this.subnet.serverIpInt) return none('unknown-client', false, `${m.ciaddr} is not from this server's pool`);
      return this.nak(`${m.ciaddr} is not leased to this client`);
    }
    if (m.requestedIp === undefined) return none('no-address', false, 'REQUEST with no server id, ciaddr or requested address');
    // INIT-REBOOT: the client wants to keep an address it had.
    const ip = parseIp(m.requestedIp);
    if (ip === undefined || !this.subnet.isHostAddress(ip)) return this.nak(`${m.requestedIp} is not on this network`);
    const b = this.byIp.get(ip);
    if (b && b.client === client && b.state !== 'declined') return this.bind(ip, client, m, now);
    if (b || ip === this.subnet.serverIpInt) return this.nak(`${m.requestedIp} is held by another client`);
    // RFC 2131 §4.3.2: a server with no record of the client stays silent, so that servers that do not
    // share state can coexist on one wire. The client times out and DISCOVERs, and gets it then if free.
    return none('unknown-client', false, `no record of ${m.requestedIp} for this client`);
  }

  private release(m: ClientMessage): Decision {
    if (m.serverId !== undefined && m.serverId !== this.subnet.serverIp) return none('other-server', false, `released to server ${m.serverId}`);
    const ip = parseIp(m.ciaddr);
    const b = ip === undefined ? undefined : this.byIp.get(ip);
    const client = clientKey(m);
    if (!b || b.client !== client || b.state === 'declined') return none('not-owner', false, `${m.ciaddr} is not leased to this client`);
    this.byIp.delete(b.ip);
    this.remember(client, b.ip);
    return { reply: 'none', yiaddr: ZERO, outcome: 'release', persist: true, detail: `${m.ciaddr} released` };
  }

  private decline(m: ClientMessage, now: number): Decision {
    if (m.serverId !== undefined && m.serverId !== this.subnet.serverIp) return none('other-server', false, `declined to server ${m.serverId}`);
    const ip = parseIp(m.requestedIp ?? '');
    const b = ip === undefined ? undefined : this.byIp.get(ip);
    const client = clientKey(m);
    if (!b || b.client !== client || b.state === 'declined') return none('not-owner', false, `${m.requestedIp ?? '(no address)'} is not leased to this client`);
    // Another host answers ARP for it: keep it out of the pool for a while, and forget it as this client's.
    this.byIp.set(b.ip, { ip: b.ip, client: '', mac: b.mac, state: 'declined', expiresAt: now + this.declineMs });
    if (this.previous.get(client) === b.ip) this.previous.delete(client);
    return { reply: 'none', yiaddr: ZERO, outcome: 'decline', persist: true, detail: `${intToIp(b.ip)} is in use by another host` };
  }

  private inform(m: ClientMessage): Decision {
    const ip = parseIp(m.ciaddr);
    if (ip === undefined || !this.subnet.contains(ip)) return none('foreign-inform', false, `${m.ciaddr} is not on this network`);
    // Configuration only: no lease, no address (RFC 2131 §4.3.5).
    return { reply: 'ACK', yiaddr: ZERO, options: { ...this.baseOptions }, unicast: m.ciaddr, outcome: 'inform', persist: false };
  }

  // --- the table ---

  private offer(ip: number): Decision {
    return { reply: 'OFFER', yiaddr: intToIp(ip), options: this.leaseOptions(), outcome: 'offer', persist: false };
  }

  private bind(ip: number, client: string, m: ClientMessage, now: number): Decision {
    this.take(ip, client, m, 'bound', now + this.leaseSeconds * 1000);
    return { reply: 'ACK', yiaddr: intToIp(ip), options: this.leaseOptions(), outcome: 'bind', persist: true };
  }

  private nak(detail: string): Decision {
    return { reply: 'NAK', yiaddr: ZERO, options: { serverId: this.subnet.serverIp, message: detail }, outcome: 'nak', persist: false, detail };
  }

  private leaseOptions(): ReplyOptions {
    const s = this.leaseSeconds;
    return { ...this.baseOptions, leaseSeconds: s, renewalSeconds: Math.floor(s / 2), rebindingSeconds: Math.floor((s * 7) / 8) };
  }

  /** Gives `ip` to `client`, dropping any other binding the client had: one address per client. */
  private take(ip: number, client: string, m: ClientMessage, state: 'offered' | 'bound', expiresAt: number): void {
    for (const [other, b] of this.byIp) if (b.client === client && other !== ip) this.byIp.delete(other);
    this.byIp.set(ip, { ip, client, mac: m.mac.toLowerCase(), ...(m.hostname ? { hostname: m.hostname } : {}), state, expiresAt });
    if (state === 'bound') this.remember(client, ip);
  }

  /** Notes that `client` held `ip`; one client per remembered address, so the map stays within the pool's size. */
  private remember(client: string, ip: number): void {
    for (const [c, held] of this.previous) if (held === ip && c !== client) this.previous.delete(c);
    this.previous.set(client, ip);
  }

  private bindingOf(client: string): Binding | undefined {
    for (const b of this.byIp.values()) if (b.client === client && b.state !== 'declined') return b;
    return undefined;
  }

  private isFree(ip: number): boolean {
    return this.subnet.inPool(ip) && !this.byIp.has(ip);
  }

  /** The lowest free address; a full pool is seen without scanning, so it costs nothing. */
  private lowestFree(): number | undefined {
    if (this.byIp.size >= this.poolSize) return undefined;
    for (let ip = this.subnet.rangeStart; ip <= this.subnet.rangeEnd; ip++) if (this.isFree(ip)) return ip;
    return undefined;
  }
}

function view(b: Binding): LeaseView {
  return {
    ip: intToIp(b.ip), mac: b.mac,
    ...(b.client.startsWith('id:') ? { clientId: b.client.slice(3) } : {}),
    ...(b.hostname ? { hostname: b.hostname } : {}),
    state: b.state, expiresAt: b.expiresAt,
  };
}
