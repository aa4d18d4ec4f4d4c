// Garbage on the wire: a live publisher must keep serving whatever arrives on its
// request socket, and a subscriber must survive whatever a (fake) publisher sends,
// dropping the bad messages and applying the good ones.
import * as fs from 'node:fs';
import * as net from 'node:net';
import t from 'tap';
import { Dealer, Router, XPublisher } from 'zeromq';
import { endpointPaths, ipc } from '../../pubsub/paths';
import { encodeDel, encodeHeartbeat, encodeRestarted, encodeSet, encodeSnapshot, topicFrame } from '../../pubsub/wire';
import { entries, startPeer, startPublisher, tempDirs } from '../fixtures/peer';

const b = (s: string): Buffer => Buffer.from(s);
const id = (n: number): Buffer => Buffer.from(new Uint32Array([n]).buffer);

/** An update header as pubsub/wire.ts lays it out: op u8, epoch u32, seq u48. */
function hdr(op: number, epoch: number, seq: number, bytes = 11): Buffer {
  const h = Buffer.alloc(bytes);
  h.writeUInt8(op, 0);
  h.writeUInt32LE(epoch, 1);
  if (bytes >= 11) h.writeUIntLE(seq, 5, 6);
  return h;
}

t.test('garbage and oversized requests do not stop a publisher serving', async (t) => {
  const dirs = tempDirs(t);
  const pub = await startPublisher(t, 'pub', dirs);
  await pub.call('publication', { type: 'Item', entries: entries(10), signal: true });
  const sub1 = await startPeer(t, 'sub1', dirs);
  await sub1.call('subscribe', { type: 'Item' });
  await sub1.waitFor((e) => e.ev === 'synchronized', 'synchronized');
  const { req, pub: pubPath } = endpointPaths(dirs.run, 'alpha');

  const dealer = new Dealer({ linger: 0 });
  t.teardown(() => dealer.close());
  dealer.connect(ipc(req));
  const garbage: Buffer[][] = [
    [b('x')],
    [id(1), b('S')],
    [b('abc'), b('S'), b('Item')], // request id of 3 bytes
    [id(2), b('SS'), b('Item')], // op of 2 bytes
    [id(3), b('Q'), b('Item')], // unknown op
    [id(4), b('S'), b('Item'), b('extra')],
    [Buffer.from([0xff, 0x00, 0xfe]), Buffer.alloc(0), Buffer.alloc(7, 0xaa), b('\u0000')],
  ];
  for (const frames of garbage) await dealer.send(frames);
  // Same connection, after the garbage: a good request is still answered.
  await dealer.send([id(77), b('L'), Buffer.alloc(0)]);
  const [rid, op, info] = await dealer.receive();
  t.same([rid?.readUInt32LE(0), op?.toString()], [77, 'L'], 'a listing request after the garbage is answered');
  t.match(JSON.parse(String(info)), { agent: 'alpha', pid: pub.pid, pubs: [{ type: 'Item', keys: 10 }] }, 'with the publisher\'s info');
  t.equal((await pub.stats('Item')).badRequests.alpha, garbage.length, 'each malformed request was counted and dropped');

  // Bytes that are not ZMTP at all, on both sockets (libzmq may read them as ZMTP/1.0).
  for (const p of [req, pubPath]) {
    const s = net.connect(p);
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    s.end(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)));
  }
  // Frames over the ROUTER's 1 KiB limit: libzmq drops that connection.
  await dealer.send([id(5), b('S'), Buffer.alloc(2000, 'I')]);
  await dealer.send([Buffer.alloc(64 * 1024, 1)]);

  const from = sub1.mark();
  await pub.call('publish', { type: 'Item', key: 'k1', value: { n: 101 } });
  await sub1.waitForValue('Item', 'k1', { n: 101 }, from);
  t.pass('the existing subscriber still gets updates');
  const sub2 = await startPeer(t, 'sub2', dirs);
  await sub2.call('subscribe', { type: 'Item', echo: false });
  await sub2.waitFor((e) => e.ev === 'synchronized', 'synchronized');
  const expected = (await pub.call('state', { type: 'Item', side: 'pub' })).entries;
  t.same((await sub2.call('state', { type: 'Item' })).entries, expected, 'a new subscriber gets the full state');
  t.equal(pub.exit, undefined, 'the publisher is still running');
});

t.test('a subscriber survives a fake publisher sending garbage and applies the good messages', async (t) => {
  const dirs = tempDirs(t);
  const { pub: pubPath, req } = endpointPaths(dirs.run, 'alpha');
  fs.mkdirSync(`${dirs.run}/bus`);
  // XPUB, so the test sees the subscription arrive instead of guessing when it has.
  const xpub = new XPublisher({ linger: 0 });
  const router = new Router({ linger: 0 });
  t.teardown(() => {
    xpub.close();
    router.close();
  });
  await xpub.bind(ipc(pubPath));
  await router.bind(ipc(req));

  // No snapshot retries: every request and reply below is accounted for.
  const sub = await startPeer(t, 'sub', { ...dirs, snapshotTimeoutMs: 60_000 });
  await sub.call('subscribe', { type: 'Item' });
  const T = topicFrame('Item');
  for (;;) {
    const [m] = await xpub.receive();
    if (m?.[0] === 1 && m.subarray(1).equals(T)) break;
  }

  const E = 0x5eed;
  const [who, reqId, op, arg] = await router.receive();
  t.same([op?.toString(), arg?.toString()], ['S', 'Item'], 'the subscriber asks for a snapshot');
  const snapHdr = (epoch: number): Buffer => encodeSnapshot(reqId!, { epoch, seq: 10, restarted: 0, persistent: false, entries: [] })[2]!;
  const badReplies: Buffer[][] = [
    [reqId!, b('S'), Buffer.alloc(5)], // short header
    [reqId!, b('S'), snapHdr(E), b('a')], // key without value
    [reqId!, b('X'), b('junk')], // unknown op
    [reqId!, b('S'), snapHdr(0)], // zero epoch
  ];
  for (const frames of badReplies) await router.send([who!, ...frames]);
  await router.send([who!, b('xx'), b('S'), snapHdr(E)]); // no such request: ignored
  const snap = encodeSnapshot(reqId!, {
    epoch: E, seq: 10, restarted: 0, persistent: false,
    entries: [['a', '{"n":1}'], ['b', '{"n":2}'], ['bad1', 'nope'], ['bad2', '{"n":"x"}'], ['', '{"n":1}']],
  });
  await router.send([who!, ...snap]);
  await sub.waitFor((e) => e.ev === 'synchronized', 'synchronized');
  t.same(sub.handlerEvents('Item').map((e) => [e.ev, e.key]), [['create', 'a'], ['create', 'b'], ['synchronized', undefined]],
    'the snapshot is applied without its non-JSON, schema-invalid and empty-key entries');

  const from = sub.mark();
  const malformed: Buffer[][] = [
    [T],
    [T, hdr(1, E, 11, 10), b('k'), b('{"n":1}')], // header too short
    [T, hdr(1, E, 11, 12), b('k'), b('{"n":1}')], // header too long
    [b('Item\0x'), hdr(1, E, 11), b('k'), b('{"n":1}')], // topic not NUL-terminated
    [T, hdr(1, 0, 11), b('k'), b('{"n":1}')], // zero epoch
    [T, hdr(9, E, 11), b('k'), b('{"n":1}')], // unknown op
    [T, hdr(1, E, 11), b('k')], // SET without value
    [T, hdr(2, E, 11), b('k'), b('x')], // DEL with a value
    [T, hdr(3, E, 11), b('xx')], // RESTARTED with a 2-byte counter
    [b('\0hb'), b('not json')],
    [b('\0hb'), b('{"agent":"alpha","pid":1,"pubs":{"Item":[1,"x"]}}')],
  ];
  // Well-framed but bad values: they use up sequence numbers, change nothing.
  const invalid: Buffer[][] = [
    encodeSet(T, E, 11, 'c', 'not json'),
    encodeSet(T, E, 12, 'a', '{"n":"one"}'),
    encodeSet(T, E, 13, 'd', '{"pad":"no n"}'),
    // Keys the publishing API refuses (InvalidKeyError) must not reach handlers either.
    encodeSet(T, E, 14, '', '{"n":1}'),
    encodeSet(T, E, 15, 'bell\u0007', '{"n":1}'),
    encodeSet(T, E, 16, 'k'.repeat(201), '{"n":1}'),
  ];
  const good: Buffer[][] = [
    encodeSet(T, E, 17, 'c', '{"n":3}'),
    encodeSet(T, E, 18, 'a', '{"n":10}'),
    encodeDel(T, E, 19, 'b'),
    encodeRestarted(T, E, 20, 1),
    encodeHeartbeat({ agent: 'alpha', pid: 1, pubs: { Item: [E, 20] } }),
    encodeSet(T, E, 21, 'end', '{"n":1}'),
  ];
  for (const frames of [...malformed, ...invalid, ...good]) await xpub.send(frames);
  await sub.waitForValue('Item', 'end', { n: 1 }, from);

  t.same(
    sub.handlerEvents('Item', from).map((e) => [e.ev, e.key ?? e.counter, e.value]),
    [['create', 'c', { n: 3 }], ['modify', 'a', { n: 10 }], ['delete', 'b', undefined], ['restarted', 1, undefined], ['create', 'end', { n: 1 }]],
    'only the good updates reached the handlers, in order',
  );
  t.same((await sub.call('state', { type: 'Item' })).entries, { a: { n: 10 }, c: { n: 3 }, end: { n: 1 } }, 'final state');
  const stats = await sub.stats('Item');
  t.equal(stats.link.malformed, badReplies.length + malformed.length, 'every malformed reply and update was counted');
  t.equal(stats.link.invalid, 3 + invalid.length, 'every bad value and key was counted');
  t.equal(stats.link.resyncs, 1, 'nothing bad was mistaken for a gap: no resync');
  t.equal(sub.exit, undefined, 'the subscriber is still running');
});
