// Frame encoding and decoding. Decoders face whatever arrives on a socket, so
// besides round trips this checks that malformed input gives a problem or
// undefined, and that no input at all makes them throw.
import t from 'tap';
import {
  decodeHeartbeat,
  decodeSnapshot,
  decodeUpdate,
  encodeDel,
  encodeHeartbeat,
  encodeRestarted,
  encodeSet,
  encodeSnapshot,
  HEARTBEAT_TOPIC,
  newEpoch,
  OP_DEL,
  OP_RESTARTED,
  OP_SET,
  readReqId,
  reqIdFrame,
  topicFrame,
  type Heartbeat,
  type SnapshotMsg,
  type UpdateMsg,
} from '../../pubsub/wire';

const MAX_U32 = 0xffffffff;
const MAX_U48 = 2 ** 48 - 1;
const topic = topicFrame('AppInstanceConfig');

/** An 11-byte update header, built by hand so tests do not trust the encoder. */
function hdr(op: number, epoch: number, seq: number): Buffer {
  const b = Buffer.alloc(11);
  b.writeUInt8(op, 0);
  b.writeUInt32LE(epoch, 1);
  b.writeUIntLE(seq, 5, 6);
  return b;
}

function snapHdr(epoch: number, seq: number, restarted: number, persistent: number): Buffer {
  const b = Buffer.alloc(15);
  b.writeUInt32LE(epoch, 0);
  b.writeUIntLE(seq, 4, 6);
  b.writeUInt32LE(restarted, 10);
  b.writeUInt8(persistent, 14);
  return b;
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};

function isProblem(r: UpdateMsg | { problem: string }): r is { problem: string } {
  return 'problem' in r;
}

t.test('topicFrame is the type name and a NUL', async (t) => {
  t.same(topicFrame('Foo'), Buffer.from([0x46, 0x6f, 0x6f, 0]));
});

t.test('update round trips', async (t) => {
  t.test('SET', async (t) => {
    const cases: Array<[string, number, number, string, string]> = [
      ['small', 1, 1, 'k', '{"a":1}'],
      ['largest epoch and seq', MAX_U32, MAX_U48, 'key', 'null'],
      ['unicode key and value', 0xdeadbeef, 123456789012, 'ключ/🚀 x', '{"name":"ünï ✓"}'],
      ['empty JSON string value', 7, 8, 'k', '""'],
      ['key with spaces and slashes', 3, 2 ** 32 + 5, 'a b/c\\d', '[1,2,3]'],
    ];
    for (const [name, epoch, seq, key, json] of cases) {
      const frames = encodeSet(topic, epoch, seq, key, json);
      t.equal(frames.length, 4, `${name}: 4 frames`);
      t.equal(frames[1]?.length, 11, `${name}: 11-byte header`);
      t.same(decodeUpdate(frames), { type: 'AppInstanceConfig', op: OP_SET, epoch, seq, key, json }, name);
    }
  });

  t.test('DEL', async (t) => {
    for (const [epoch, seq, key] of [[1, 1, 'k'], [MAX_U32, MAX_U48, 'ünï/code'], [42, 99, 'x'.repeat(200)]] as const) {
      const frames = encodeDel(topic, epoch, seq, key);
      t.equal(frames.length, 3);
      t.same(decodeUpdate(frames), { type: 'AppInstanceConfig', op: OP_DEL, epoch, seq, key });
    }
  });

  t.test('RESTARTED', async (t) => {
    for (const counter of [0, 1, 2, 1000, MAX_U32]) {
      const frames = encodeRestarted(topic, 5, 6, counter);
      t.equal(frames.length, 3);
      t.same(decodeUpdate(frames), { type: 'AppInstanceConfig', op: OP_RESTARTED, epoch: 5, seq: 6, key: '', counter }, `counter ${counter}`);
    }
  });

  t.test('the header layout is op u8, epoch u32le, seq u48le', async (t) => {
    const [, h] = encodeSet(topic, 0x04030201, 0x0a0908070605, 'k', '1');
    t.same(h, Buffer.from([OP_SET, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    t.same(decodeUpdate([topic, hdr(OP_DEL, 9, 10), Buffer.from('k')]), { type: 'AppInstanceConfig', op: OP_DEL, epoch: 9, seq: 10, key: 'k' });
  });
});

t.test('heartbeat round trip', async (t) => {
  const hbs: Heartbeat[] = [
    { agent: 'zedmanager', pid: 1234, pubs: {} },
    { agent: 'nim', pid: 1, pubs: { DeviceNetworkStatus: [MAX_U32, MAX_U48], AgentStatus: [1, 0] } },
  ];
  for (const hb of hbs) {
    const frames = encodeHeartbeat(hb);
    t.equal(frames.length, 2);
    t.same(frames[0], HEARTBEAT_TOPIC);
    t.same(decodeHeartbeat(frames), hb);
  }
});

t.test('snapshot round trip', async (t) => {
  const reqId = reqIdFrame(77);
  const snaps: SnapshotMsg[] = [
    { epoch: 1, seq: 0, restarted: 0, persistent: false, entries: [] },
    { epoch: MAX_U32, seq: MAX_U48, restarted: MAX_U32, persistent: true, entries: [['a', '1'], ['b/ü', '{"x":[1]}'], ['', '']] },
    { epoch: 12, seq: 34, restarted: 1, persistent: false, entries: Array.from({ length: 100 }, (_, i): [string, string] => [`k${i}`, JSON.stringify({ i })]) },
  ];
  for (const s of snaps) {
    const frames = encodeSnapshot(reqId, s);
    t.equal(frames.length, 3 + 2 * s.entries.length);
    t.equal(readReqId(frames[0]), 77);
    t.equal(frames[1]?.toString(), 'S');
    t.same(decodeSnapshot(frames), s, `${s.entries.length} entries`);
  }
});

t.test('request ids', async (t) => {
  for (const id of [0, 1, 0x7fffffff, MAX_U32]) t.equal(readReqId(reqIdFrame(id)), id);
  t.equal(readReqId(reqIdFrame(MAX_U32 + 1)), 0, 'wraps to u32');
  t.equal(readReqId(reqIdFrame(-1)), MAX_U32, 'wraps to u32');
  for (const b of [undefined, Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(5)]) t.equal(readReqId(b), undefined);
});

t.test('newEpoch is a non-zero u32', async (t) => {
  const real = Math.random;
  t.teardown(() => { Math.random = real; });
  for (const r of [0, 0.5, 1 - Number.EPSILON]) {
    Math.random = () => r;
    const e = newEpoch();
    t.ok(Number.isInteger(e) && e >= 1 && e <= MAX_U32, `random ${r} -> ${e}`);
  }
  Math.random = real;
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(newEpoch());
  t.ok(seen.size > 990, 'epochs differ between instances');
  t.notOk(seen.has(0));
});

t.test('decodeUpdate reports malformed messages', async (t) => {
  const k = Buffer.from('k');
  const j = Buffer.from('{}');
  const table: Array<[string, Buffer[], RegExp]> = [
    ['no frames', [], /frames, got 0/],
    ['topic only', [topic], /frames, got 1/],
    ['topic and header', [topic, hdr(OP_DEL, 1, 1)], /frames, got 2/],
    ['topic without NUL', [Buffer.from('Foo'), hdr(OP_DEL, 1, 1), k], /topic/],
    ['topic that is only a NUL', [Buffer.from([0]), hdr(OP_DEL, 1, 1), k], /topic/],
    ['empty topic', [Buffer.alloc(0), hdr(OP_DEL, 1, 1), k], /topic/],
    ['heartbeat topic', [HEARTBEAT_TOPIC, hdr(OP_DEL, 1, 1), k], /topic/],
    ['empty header', [topic, Buffer.alloc(0), k], /header is 0 bytes/],
    ['short header', [topic, hdr(OP_DEL, 1, 1).subarray(0, 10), k], /header is 10 bytes/],
    ['long header', [topic, Buffer.concat([hdr(OP_DEL, 1, 1), Buffer.from([0])]), k], /header is 12 bytes/],
    ['zero epoch', [topic, hdr(OP_SET, 0, 1), k, j], /zero epoch/],
    ['zero seq', [topic, hdr(OP_DEL, 1, 0), k], /zero/],
    ['unknown op 0', [topic, hdr(0, 1, 1), k], /unknown op 0/],
    ['unknown op 4', [topic, hdr(4, 1, 1), k, j], /unknown op 4/],
    ['unknown op 255', [topic, hdr(255, 1, 1), k], /unknown op 255/],
    ['SET without value', [topic, hdr(OP_SET, 1, 1), k], /SET/],
    ['SET with an extra frame', [topic, hdr(OP_SET, 1, 1), k, j, j], /SET/],
    ['DEL with a value', [topic, hdr(OP_DEL, 1, 1), k, j], /DEL/],
    ['RESTARTED with a 3-byte counter', [topic, hdr(OP_RESTARTED, 1, 1), Buffer.alloc(3)], /RESTARTED/],
    ['RESTARTED with a 5-byte counter', [topic, hdr(OP_RESTARTED, 1, 1), Buffer.alloc(5)], /RESTARTED/],
    ['RESTARTED with an extra frame', [topic, hdr(OP_RESTARTED, 1, 1), u32(1), j], /RESTARTED/],
  ];
  for (const [name, frames, problem] of table) {
    let r: UpdateMsg | { problem: string } | undefined;
    t.doesNotThrow(() => { r = decodeUpdate(frames); }, name);
    t.ok(r && isProblem(r), `${name}: is a problem`);
    if (r && isProblem(r)) t.match(r.problem, problem, `${name}: ${r.problem}`);
  }
});

t.test('decodeHeartbeat rejects anything but a well-formed heartbeat', async (t) => {
  const hb = (text: string): Buffer[] => [HEARTBEAT_TOPIC, Buffer.from(text)];
  const table: Array<[string, Buffer[]]> = [
    ['no frames', []],
    ['topic only', [HEARTBEAT_TOPIC]],
    ['three frames', [HEARTBEAT_TOPIC, Buffer.from('{"agent":"a","pid":1,"pubs":{}}'), Buffer.from('x')]],
    ['empty body', hb('')],
    ['not JSON', hb('hello')],
    ['truncated JSON', hb('{"agent":"a","pubs":{')],
    ['JSON null', hb('null')],
    ['JSON number', hb('42')],
    ['JSON string', hb('"agent"')],
    ['missing agent', hb('{"pid":1,"pubs":{}}')],
    ['agent not a string', hb('{"agent":7,"pid":1,"pubs":{}}')],
    ['missing pubs', hb('{"agent":"a","pid":1}')],
    ['pubs null', hb('{"agent":"a","pid":1,"pubs":null}')],
    ['pubs a string', hb('{"agent":"a","pid":1,"pubs":"x"}')],
    ['position not an array', hb('{"agent":"a","pid":1,"pubs":{"T":5}}')],
    ['position of one number', hb('{"agent":"a","pid":1,"pubs":{"T":[1]}}')],
    ['position of three numbers', hb('{"agent":"a","pid":1,"pubs":{"T":[1,2,3]}}')],
    ['fractional seq', hb('{"agent":"a","pid":1,"pubs":{"T":[1,2.5]}}')],
    ['string epoch', hb('{"agent":"a","pid":1,"pubs":{"T":["1",2]}}')],
    ['unsafe integer', hb('{"agent":"a","pid":1,"pubs":{"T":[1,9007199254740993]}}')],
    ['one bad position among good ones', hb('{"agent":"a","pid":1,"pubs":{"A":[1,2],"T":[1,null]}}')],
    ['over 1 MiB', hb(JSON.stringify({ agent: 'a', pid: 1, pubs: {}, pad: 'x'.repeat(1 << 20) }))],
    ['invalid UTF-8', [HEARTBEAT_TOPIC, Buffer.from([0xff, 0xfe, 0x7b])]],
  ];
  for (const [name, frames] of table) {
    let r: Heartbeat | undefined = { agent: 'sentinel', pid: 0, pubs: {} };
    t.doesNotThrow(() => { r = decodeHeartbeat(frames); }, name);
    t.equal(r, undefined, name);
  }
  t.ok(decodeHeartbeat(hb('{"agent":"a","pid":1,"pubs":{"T":[1,2]}}')), 'the well-formed control case decodes');
});

t.test('decodeHeartbeat rejects positions no publisher can have', async (t) => {
  // Epochs are non-zero u32s and sequence numbers u48s (see newEpoch and the
  // update header). decodeUpdate refuses a zero epoch; a heartbeat that claims
  // one (or a negative or oversized number) makes every live mirror of that
  // type drop its state and resync, so it should be refused the same way.
  for (const [name, pos] of [['zero epoch', '[0,5]'], ['negative epoch', '[-1,5]'], ['epoch over u32', '[4294967296,5]'], ['negative seq', '[1,-5]']] as const) {
    const frames = [HEARTBEAT_TOPIC, Buffer.from(`{"agent":"a","pid":1,"pubs":{"T":${pos}}}`)];
    t.equal(decodeHeartbeat(frames), undefined, name);
  }
});

t.test('decodeSnapshot rejects malformed replies', async (t) => {
  const id = reqIdFrame(1);
  const S = Buffer.from('S');
  const good = snapHdr(1, 2, 3, 1);
  const table: Array<[string, Buffer[]]> = [
    ['no frames', []],
    ['request id only', [id]],
    ['no header', [id, S]],
    ['empty header', [id, S, Buffer.alloc(0)]],
    ['short header', [id, S, good.subarray(0, 14)]],
    ['long header', [id, S, Buffer.concat([good, Buffer.alloc(1)])]],
    ['a key without a value', [id, S, good, Buffer.from('k')]],
    ['three entry frames', [id, S, good, Buffer.from('k'), Buffer.from('1'), Buffer.from('k2')]],
    ['zero epoch', [id, S, snapHdr(0, 2, 3, 1)]],
    ['zero epoch with entries', [id, S, snapHdr(0, 2, 3, 1), Buffer.from('k'), Buffer.from('1')]],
  ];
  for (const [name, frames] of table) {
    let r: SnapshotMsg | undefined = { epoch: 9, seq: 9, restarted: 9, persistent: false, entries: [] };
    t.doesNotThrow(() => { r = decodeSnapshot(frames); }, name);
    t.equal(r, undefined, name);
  }
  t.same(decodeSnapshot([id, S, good]), { epoch: 1, seq: 2, restarted: 3, persistent: true, entries: [] }, 'control case');
  t.equal(decodeSnapshot([id, S, snapHdr(1, 2, 3, 0)])?.persistent, false);
});

// ---- fuzzing ---------------------------------------------------------------

/** mulberry32: a small seeded PRNG so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function randomFrames(rnd: () => number): Buffer[] {
  const int = (n: number): number => Math.floor(rnd() * n);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const pick = rnd();
  if (pick < 0.4) {
    // Pure garbage: 0..6 frames of 0..24 random bytes, some with the sizes decoders look for.
    return Array.from({ length: int(7) }, () => bytes([0, 1, 2, 3, 4, 5, 11, 15, 24][int(9)] ?? 0));
  }
  // Start from a valid message and damage it.
  let frames: Buffer[];
  const which = int(5);
  const epoch = int(3) === 0 ? 0 : 1 + int(MAX_U32);
  const seq = int(3) === 0 ? 0 : int(MAX_U48);
  if (which === 0) frames = encodeSet(topic, 1 + int(MAX_U32), 1 + int(1000), 'k' + int(10), '{"a":1}');
  else if (which === 1) frames = encodeDel(topic, 1 + int(MAX_U32), 1 + int(1000), 'k');
  else if (which === 2) frames = encodeRestarted(topic, 1 + int(MAX_U32), 1 + int(1000), int(10));
  else if (which === 3) frames = encodeHeartbeat({ agent: 'a', pid: 1, pubs: { T: [epoch, seq] } });
  else frames = encodeSnapshot(reqIdFrame(int(1000)), { epoch, seq, restarted: int(5), persistent: rnd() < 0.5, entries: [['k', '1']] });
  frames = frames.map((f) => Buffer.from(f));
  const damage = int(6);
  const i = int(frames.length);
  const f = frames[i];
  if (damage === 0 && f && f.length) f[int(f.length)] = int(256); // flip a byte
  else if (damage === 1 && f) frames[i] = f.subarray(0, int(f.length + 1)); // truncate a frame
  else if (damage === 2) frames.splice(i, 1); // drop a frame
  else if (damage === 3) frames.splice(i, 0, bytes(int(16))); // insert a frame
  else if (damage === 4 && f) frames[i] = Buffer.concat([f, bytes(1 + int(4))]); // extend a frame
  else if (damage === 5 && f) f.writeUInt8(int(256), 0); // change the op or first byte
  return frames;
}

t.test('decoders never throw on random frames (seeded fuzz)', async (t) => {
  const SEED = 0x5eed2025;
  const ITERATIONS = 20_000;
  const rnd = prng(SEED);
  const failures: string[] = [];
  let updates = 0;
  let heartbeats = 0;
  let snapshots = 0;
  for (let n = 0; n < ITERATIONS && failures.length < 5; n++) {
    const frames = randomFrames(rnd);
    const dump = (): string => `#${n} seed ${SEED}: [${frames.map((f) => f.toString('hex')).join(', ')}]`;
    try {
      const u = decodeUpdate(frames);
      if (isProblem(u)) {
        if (typeof u.problem !== 'string' || u.problem === '') failures.push(`empty problem ${dump()}`);
      } else {
        updates++;
        const ok = [OP_SET, OP_DEL, OP_RESTARTED].includes(u.op) && u.epoch >= 1 && u.epoch <= MAX_U32 && u.seq >= 1 && u.seq <= MAX_U48 &&
          (u.op !== OP_SET || typeof u.json === 'string') && (u.op !== OP_RESTARTED || Number.isInteger(u.counter));
        if (!ok) failures.push(`bad update ${JSON.stringify(u)} from ${dump()}`);
      }
      const hb = decodeHeartbeat(frames);
      if (hb !== undefined) {
        heartbeats++;
        if (typeof hb.agent !== 'string' || typeof hb.pubs !== 'object') failures.push(`bad heartbeat from ${dump()}`);
      }
      const s = decodeSnapshot(frames);
      if (s !== undefined) {
        snapshots++;
        if (s.epoch === 0 || !Array.isArray(s.entries) || s.entries.some((e) => typeof e[0] !== 'string' || typeof e[1] !== 'string')) {
          failures.push(`bad snapshot from ${dump()}`);
        }
      }
      readReqId(frames[0]);
    } catch (err) {
      failures.push(`threw ${(err as Error).message} on ${dump()}`);
    }
  }
  t.same(failures, [], `${ITERATIONS} random frame arrays`);
  // The generator must reach the decoders' accepting paths too, or the loop proves little.
  t.ok(updates > 500, `some damaged updates still decode (${updates})`);
  t.ok(heartbeats > 50, `some damaged heartbeats still decode (${heartbeats})`);
  t.ok(snapshots > 500, `some damaged snapshots still decode (${snapshots})`);
});
