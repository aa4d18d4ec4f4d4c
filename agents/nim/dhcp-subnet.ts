// The subnet a DHCP server serves and its address pool, checked once: pure arithmetic on
// IPv4 addresses as unsigned 32-bit numbers.
import type { DhcpServerConfig } from '../../pubsub/collections/network';

/** A configuration the server cannot serve, naming the field at fault. */
export class DhcpConfigError extends Error {
  constructor(readonly field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'DhcpConfigError';
  }
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** The address as a number, or undefined when it is not a dotted quad. */
export function parseIp(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export class Subnet {
  readonly serverIp: string;
  readonly serverIpInt: number;
  readonly prefix: number;
  readonly mask: string;
  readonly network: number;
  readonly broadcast: string;
  readonly broadcastInt: number;
  readonly rangeStart: number;
  readonly rangeEnd: number;
  readonly poolSize: number;

  /** `address` is the port's own CIDR (10.77.0.1/24); throws DhcpConfigError naming the field at fault. */
  constructor(address: string, config: DhcpServerConfig) {
    const [ip, bits, extra] = String(address).split('/');
    const server = parseIp(ip ?? '');
    const prefix = Number(bits);
    if (server === undefined || extra !== undefined || !/^\d{1,2}$/.test(bits ?? '') || prefix > 32) {
      throw new DhcpConfigError('address', `${JSON.stringify(address)} is not an IPv4 address with a prefix length (10.77.0.1/24)`);
    }
    if (prefix < 8 || prefix > 30) throw new DhcpConfigError('address', `${address}: a /${prefix} network is not one to serve DHCP on (/8 to /30)`);
    const maskInt = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    this.serverIp = intToIp(server);
    this.serverIpInt = server;
    this.prefix = prefix;
    this.mask = intToIp(maskInt);
    this.network = (server & maskInt) >>> 0;
    this.broadcastInt = (this.network | (~maskInt >>> 0)) >>> 0;
    this.broadcast = intToIp(this.broadcastInt);
    if (server === this.network || server === this.broadcastInt) throw new DhcpConfigError('address', `${address} is the network's ${server === this.network ? 'own' : 'broadcast'} address`);
    const ends = { rangeStart: config.rangeStart, rangeEnd: config.rangeEnd };
    const nums: Record<string, number> = {};
    for (const [field, v] of Object.entries(ends)) {
      const n = parseIp(String(v));
      if (n === undefined) throw new DhcpConfigError(`dhcpServer.${field}`, `${JSON.stringify(v)} is not an IPv4 address`);
      if (!this.contains(n)) throw new DhcpConfigError(`dhcpServer.${field}`, `${v} is outside the port's subnet ${this.describeSubnet()}`);
      nums[field] = n;
    }
    this.rangeStart = nums.rangeStart!;
    this.rangeEnd = nums.rangeEnd!;
    if (this.rangeStart > this.rangeEnd) throw new DhcpConfigError('dhcpServer.rangeEnd', `${config.rangeEnd} comes before rangeStart ${config.rangeStart}`);
    for (const [field, list] of [['gateway', config.gateway === undefined ? [] : [config.gateway]], ['dns', config.dns ?? []]] as const) {
      for (const v of list) if (parseIp(String(v)) === undefined) throw new DhcpConfigError(`dhcpServer.${field}`, `${JSON.stringify(v)} is not an IPv4 address`);
    }
    let size = this.rangeEnd - this.rangeStart + 1;
    for (const excluded of [this.network, this.broadcastInt, server]) if (excluded >= this.rangeStart && excluded <= this.rangeEnd) size -= 1;
    if (size < 1) throw new DhcpConfigError('dhcpServer', `the range ${config.rangeStart}-${config.rangeEnd} holds no address to give`);
    this.poolSize = size;
  }

  contains(ip: number): boolean {
    return ip >= this.network && ip <= this.broadcastInt;
  }

  /** In the subnet, and neither its network nor its broadcast address. */
  isHostAddress(ip: number): boolean {
    return ip > this.network && ip < this.broadcastInt;
  }

  /** An address the server may give: in the range, a host address, not the server's own. */
  inPool(ip: number): boolean {
    return ip >= this.rangeStart && ip <= this.rangeEnd && this.isHostAddress(ip) && ip !== this.serverIpInt;
  }

  describeSubnet(): string {
    return `${intToIp(this.network)}/${this.prefix}`;
  }

  describePool(): string {
    return `${intToIp(this.rangeStart)}-${intToIp(this.rangeEnd)}`;
  }
}
