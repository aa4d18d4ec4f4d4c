// nim's use of node-dhcp's codec: what it reads from a client's packet, what it refuses, and the
// codec faults it works around (Pad misread, client id cut at NUL, unpadded replies).
import t from 'tap';
import { MalformedPacket, decodeReply, decodeRequest, encodeReply, encodeRequest, type DhcpRequestPacket } from '../../agents/nim/dhcp-packet';

const base: DhcpRequestPacket = { type: 'DISCOVER', xid: 0x1234abcd, flags: 0x8000, ciaddr: '0.0.0.0', giaddr: '0.0.0.0', mac: '02:00:00:00:00:0a' };
/** A request whose options are exactly `opts` (after the magic cookie). */
const withOptions = (opts: number[]): Buffer => Buffer.concat([encodeRequest(base).subarray(0, 240), Buffer.from(opts)]);

t.test('a request reads back as it was written', async (t) => {
  const p: DhcpRequestPacket = { ...base, type: 'REQUEST', requestedIp: '10.77.0.10', serverId: '10.77.0.1', clientId: '01020000000001', hostname: 'cam-1' };
  t.same(decodeRequest(encodeRequest({ ...p, extra: { 12: 'cam-1' } })), p);
});

t.test('a Pad before an option does not hide the option (the codec skips two bytes)', async (t) => {
  const got = decodeRequest(withOptions([53, 1, 1, 0, 0, 61, 7, 1, 2, 0, 0, 0, 0, 1, 50, 4, 10, 77, 0, 9, 255]));
  t.equal(got.clientId, '01020000000001', 'the whole binary id, NULs included');
  t.equal(got.requestedIp, '10.77.0.9');
  const other = decodeRequest(withOptions([53, 1, 1, 61, 7, 1, 2, 0, 0, 0, 0, 2, 255]));
  t.not(other.clientId, got.clientId, 'ids that differ after a 00 byte stay different');
});

t.test('what is not a client\'s DHCP packet is refused with a reason', async (t) => {
  const reply = encodeReply({ type: 'OFFER', xid: 1, flags: 0, ciaddr: '0.0.0.0', yiaddr: '10.77.0.10', giaddr: '0.0.0.0', mac: base.mac, options: { serverId: '10.77.0.1' } });
  const cases: Array<[string, Buffer, RegExp]> = [
    ['short', Buffer.alloc(100), /shorter than a DHCP header/],
    ['a BOOTREPLY', reply, /op 2 is not BOOTREQUEST/],
    ['not Ethernet', Buffer.concat([Buffer.from([1, 6, 6]), encodeRequest(base).subarray(3)]), /hardware type 6\/length 6 is not Ethernet/],
    ['no cookie', Buffer.concat([encodeRequest(base).subarray(0, 236), Buffer.alloc(10)]), /no DHCP magic cookie/],
    ['BOOTP', withOptions([255]), /no DHCP message type/],
    ['bad type', withOptions([53, 1, 9, 255]), /unknown DHCP message type 9/],
    ['truncated option', withOptions([53, 1, 1, 50, 40, 1]), /option 50 runs past the end/],
    ['bad address option', withOptions([53, 1, 3, 54, 3, 1, 2, 3, 255]), /option 54 is 3 bytes/],
  ];
  for (const [what, buf, reason] of cases) {
    t.throws(() => decodeRequest(buf), MalformedPacket, what);
    try { decodeRequest(buf); } catch (e) { t.match((e as MalformedPacket).reason, reason, what); }
  }
});

t.test('unknown options are skipped quietly', async (t) => {
  const written: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => { written.push(a.join(' ')); };
  try {
    t.match(decodeRequest(withOptions([53, 1, 1, 82, 3, 1, 1, 1, 250, 0, 255])), { type: 'DISCOVER' });
  } finally {
    console.error = orig;
  }
  t.same(written, [], 'nothing on stderr');
});

t.test('a reply is at least 300 bytes and carries the options', async (t) => {
  const r = {
    type: 'ACK' as const, xid: 7, flags: 0x8000, ciaddr: '0.0.0.0', yiaddr: '10.77.0.10', giaddr: '0.0.0.0', mac: base.mac,
    options: { serverId: '10.77.0.1', subnetMask: '255.255.255.0', router: ['10.77.0.254'], dns: ['10.77.0.53', '9.9.9.9'], domain: 'lan.test', broadcast: '10.77.0.255', leaseSeconds: 600, renewalSeconds: 300, rebindingSeconds: 525 },
  };
  const buf = encodeReply(r);
  t.ok(buf.length >= 300, `${buf.length} bytes`);
  t.same(decodeReply(buf), r);
  const nak = decodeReply(encodeReply({ ...r, type: 'NAK', yiaddr: '0.0.0.0', options: { serverId: '10.77.0.1', message: 'not yours' } }));
  t.same(nak.options, { serverId: '10.77.0.1', message: 'not yours' });
});
