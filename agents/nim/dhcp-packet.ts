// DHCP packets on the wire, through node-dhcp's codec (npm `dhcp`, lib/protocol.js) with its
// faults worked around. Its option parser is not used: it reads a Pad (0) as if it had a length
// byte and so misreads the option after it; it decodes the client identifier (61) as text cut at
// the first NUL, so two clients whose ids differ after a 00 byte look the same; and it prints
// "Option N not known" on stderr for any option it lacks (82 from relays, say). We parse the fixed
// header with the codec and walk the options ourselves. Its formatter writes no padding, so
// replies are padded here to BOOTP's 300-byte minimum that some clients insist on.
import type { DhcpMessageType, ReplyOptions } from './dhcp-leases';

export type { ReplyOptions } from './dhcp-leases';

interface CodecPacket {
  op: number; htype: number; hlen: number; hops: number; xid: number; secs: number; flags: number;
  ciaddr: string; yiaddr: string; siaddr: string; giaddr: string; chaddr: string; sname: string; file: string;
  options: Record<number, unknown>;
}
interface Codec {
  parse(buf: Buffer): CodecPacket;
  format(p: CodecPacket): { _data: Buffer; _w: number };
}
const codec = require('dhcp/lib/protocol') as Codec;

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
const HEADER_LENGTH = 236;
const MAGIC_COOKIE = 0x63825363;
const MIN_REPLY_LENGTH = 300;
const MESSAGE_TYPES: readonly DhcpMessageType[] = ['DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM'];

/** What the server needs from a client's packet. */
export interface DhcpRequestPacket {
  type: DhcpMessageType;
  xid: number;
  flags: number;
  ciaddr: string;
  giaddr: string;
  /** aa:bb:cc:dd:ee:ff */
  mac: string;
  /** Option 61 as hex, when sent. */
  clientId?: string;
  /** Option 50. */
  requestedIp?: string;
  /** Option 54. */
  serverId?: string;
  /** Option 12. */
  hostname?: string;
}

/** A packet the server refuses to read, with the reason (counted by the driver). */
export class MalformedPacket extends Error {
  constructor(readonly reason: string) {
    super(`malformed DHCP packet: ${reason}`);
    this.name = 'MalformedPacket';
  }
}

/** The options as raw bytes by code (the last copy wins; RFC 3396 concatenation is not needed here). */
export function readOptions(buf: Buffer, start: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let i = start;
  while (i < buf.length) {
    const code = buf[i]!;
    if (code === 255) return out;
    if (code === 0) { i += 1; continue; }
    const len = buf[i + 1];
    if (len === undefined || i + 2 + len > buf.length) throw new MalformedPacket(`option ${code} runs past the end of the packet`);
    out.set(code, buf.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return out; // no End option: tolerated, as most servers do
}

const ipOf = (b: Buffer | undefined, code: number): string | undefined => {
  if (b === undefined) return undefined;
  if (b.length !== 4) throw new MalformedPacket(`option ${code} is ${b.length} bytes, not an IPv4 address`);
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
};

/** A client's BOOTREQUEST, or MalformedPacket. BOOTREPLYs and non-Ethernet packets are refused here. */
export function decodeRequest(buf: Buffer): DhcpRequestPacket {
  if (buf.length < HEADER_LENGTH + 4) throw new MalformedPacket(`${buf.length} bytes is shorter than a DHCP header`);
  if (buf[0] !== BOOTREQUEST) throw new MalformedPacket(`op ${buf[0]} is not BOOTREQUEST`);
  if (buf[1] !== 1 || buf[2] !== 6) throw new MalformedPacket(`hardware type ${buf[1]}/length ${buf[2]} is not Ethernet`);
  if (buf.readUInt32BE(HEADER_LENGTH) !== MAGIC_COOKIE) throw new MalformedPacket('no DHCP magic cookie');
  // The codec sees the header and an empty option list only (see the top of this file).
  const head = codec.parse(Buffer.concat([buf.subarray(0, HEADER_LENGTH + 4), Buffer.from([255])]));
  const opts = readOptions(buf, HEADER_LENGTH + 4);
  const t = opts.get(53);
  if (t === undefined || t.length !== 1) throw new MalformedPacket('no DHCP message type (option 53): a BOOTP packet');
  const type = MESSAGE_TYPES[t[0]! - 1];
  if (type === undefined) throw new MalformedPacket(`unknown DHCP message type ${t[0]}`);
  const id = opts.get(61);
  const host = opts.get(12);
  return {
    type,
    xid: head.xid,
    flags: head.flags,
    ciaddr: head.ciaddr,
    giaddr: head.giaddr,
    mac: head.chaddr.toLowerCase().replace(/-/g, ':'),
    ...(id && id.length > 0 ? { clientId: id.toString('hex') } : {}),
    ...withIp('requestedIp', ipOf(opts.get(50), 50)),
    ...withIp('serverId', ipOf(opts.get(54), 54)),
    ...(host && host.length > 0 ? { hostname: host.toString('latin1').replace(/\0.*$/s, '') } : {}),
  };
}

const withIp = <K extends string>(k: K, v: string | undefined): Partial<Record<K, string>> =>
  (v === undefined ? {} : ({ [k]: v } as Record<K, string>));

export interface DhcpReplyPacket {
  type: 'OFFER' | 'ACK' | 'NAK';
  xid: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  giaddr: string;
  mac: string;
  options: ReplyOptions;
}

/** A BOOTREPLY as bytes, through the codec's formatter. */
export function encodeReply(r: DhcpReplyPacket): Buffer {
  const o = r.options;
  const options: Record<number, unknown> = { 53: MESSAGE_TYPES.indexOf(r.type) + 1, 54: o.serverId };
  const put = (code: number, v: unknown): void => { if (v !== undefined) options[code] = v; };
  put(1, o.subnetMask); put(3, o.router); put(6, o.dns); put(15, o.domain); put(28, o.broadcast);
  put(51, o.leaseSeconds); put(58, o.renewalSeconds); put(59, o.rebindingSeconds); put(56, o.message);
  const sb = codec.format({
    op: BOOTREPLY, htype: 1, hlen: 6, hops: 0, xid: r.xid, secs: 0, flags: r.flags,
    ciaddr: r.ciaddr, yiaddr: r.yiaddr, siaddr: '0.0.0.0', giaddr: r.giaddr, chaddr: r.mac,
    sname: '', file: '', options,
  });
  // The codec's buffer is zero-filled, so padding is taking more of it.
  return Buffer.from(sb._data.subarray(0, Math.max(sb._w, MIN_REPLY_LENGTH)));
}

/** A client's packet as bytes (tests and diagnostics craft requests with it). */
export function encodeRequest(p: DhcpRequestPacket & { extra?: Record<number, unknown> }): Buffer {
  const options: Record<number, unknown> = { 53: MESSAGE_TYPES.indexOf(p.type) + 1, ...(p.extra ?? {}) };
  if (p.requestedIp) options[50] = p.requestedIp;
  if (p.serverId) options[54] = p.serverId;
  const sb = codec.format({
    op: BOOTREQUEST, htype: 1, hlen: 6, hops: 0, xid: p.xid, secs: 0, flags: p.flags,
    ciaddr: p.ciaddr, yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: p.giaddr, chaddr: p.mac,
    sname: '', file: '', options,
  });
  let buf = Buffer.from(sb._data.subarray(0, sb._w));
  // Option 61 is binary: the codec would write it as text, so it is spliced in before End.
  if (p.clientId !== undefined) {
    const id = Buffer.from(p.clientId, 'hex');
    buf = Buffer.concat([buf.subarray(0, buf.length - 1), Buffer.from([61, id.length]), id, Buffer.from([255])]);
  }
  return buf;
}

/** A server's reply as the client would read it (tests): header fields and the options we send. */
export function decodeReply(buf: Buffer): DhcpReplyPacket {
  if (buf.length < HEADER_LENGTH + 4 || buf[0] !== BOOTREPLY) throw new MalformedPacket('not a BOOTREPLY');
  const head = codec.parse(Buffer.concat([buf.subarray(0, HEADER_LENGTH + 4), Buffer.from([255])]));
  const opts = readOptions(buf, HEADER_LENGTH + 4);
  const type = MESSAGE_TYPES[(opts.get(53)?.[0] ?? 0) - 1];
  if (type !== 'OFFER' && type !== 'ACK' && type !== 'NAK') throw new MalformedPacket(`reply type ${type}`);
  const ips = (b: Buffer | undefined): string[] | undefined =>
    b && Array.from({ length: b.length / 4 }, (_, i) => `${b[4 * i]}.${b[4 * i + 1]}.${b[4 * i + 2]}.${b[4 * i + 3]}`);
  const u32 = (b: Buffer | undefined): number | undefined => (b && b.length === 4 ? b.readUInt32BE(0) : undefined);
  const options: ReplyOptions = { serverId: ipOf(opts.get(54), 54) ?? '' };
  const set = <K extends keyof ReplyOptions>(k: K, v: ReplyOptions[K] | undefined): void => { if (v !== undefined) options[k] = v; };
  set('subnetMask', ipOf(opts.get(1), 1)); set('router', ips(opts.get(3))); set('dns', ips(opts.get(6)));
  set('domain', opts.get(15)?.toString('latin1')); set('broadcast', ipOf(opts.get(28), 28));
  set('leaseSeconds', u32(opts.get(51))); set('renewalSeconds', u32(opts.get(58))); set('rebindingSeconds', u32(opts.get(59)));
  set('message', opts.get(56)?.toString('latin1'));
  return {
    type, xid: head.xid, flags: head.flags, ciaddr: head.ciaddr, yiaddr: head.yiaddr, giaddr: head.giaddr,
    mac: head.chaddr.toLowerCase().replace(/-/g, ':'), options,
  };
}
