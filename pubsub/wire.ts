// The bus's wire format. Pure encode/decode: every decode checks frame counts and
// sizes and returns undefined for anything malformed, so garbage never throws.
//
// Updates, on each owner's PUB socket:
//   [ "<Type>\0", header(11 B: op u8, epoch u32, seq u48), key, json ]   op SET
//   [ "<Type>\0", header, key ]                                          op DEL
//   [ "<Type>\0", header, counter u32 ]                                  op RESTARTED
//   [ "\0hb", json {agent, pid, pubs: {Type: [epoch, seq]}} ]             heartbeat
// Requests, DEALER -> the owner's ROUTER:  [ reqId u32, op, arg ]
//   op "S" arg Type -> [ reqId, "S", snapHeader(15 B), k1, v1, k2, v2, ... ]
//                   or [ reqId, "N", Type ]  (no such publication yet)
//   op "L"          -> [ reqId, "L", json PublisherInfo ]

export const OP_SET = 1;
export const OP_DEL = 2;
export const OP_RESTARTED = 3;

export const HEARTBEAT_TOPIC = Buffer.from('\0hb');
const HEADER_BYTES = 11;
const SNAP_HEADER_BYTES = 15;

export interface UpdateMsg {
  type: string;
  op: typeof OP_SET | typeof OP_DEL | typeof OP_RESTARTED;
  epoch: number;
  seq: number;
  key: string;
  /** JSON text for SET. */
  json?: string;
  /** Counter for RESTARTED. */
  counter?: number;
}

export interface Heartbeat {
  agent: string;
  pid: number;
  pubs: Record<string, [number, number]>;
}

export interface SnapshotMsg {
  epoch: number;
  seq: number;
  restarted: number;
  persistent: boolean;
  entries: Array<[string, string]>;
}

export interface PublicationInfo {
  type: string;
  keys: number;
  epoch: number;
  seq: number;
  restarted: number;
  persistent: boolean;
}

export interface PublisherInfo {
  agent: string;
  pid: number;
  startedAt: string;
  pubs: PublicationInfo[];
}

export function topicFrame(type: string): Buffer {
  return Buffer.from(type + '\0');
}

function header(op: number, epoch: number, seq: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt8(op, 0);
  b.writeUInt32LE(epoch, 1);
  b.writeUIntLE(seq, 5, 6);
  return b;
}

export function encodeSet(topic: Buffer, epoch: number, seq: number, key: string, json: string): Buffer[] {
  return [topic, header(OP_SET, epoch, seq), Buffer.from(key), Buffer.from(json)];
}

export function encodeDel(topic: Buffer, epoch: number, seq: number, key: string): Buffer[] {
  return [topic, header(OP_DEL, epoch, seq), Buffer.from(key)];
}

export function encodeRestarted(topic: Buffer, epoch: number, seq: number, counter: number): Buffer[] {
  const c = Buffer.allocUnsafe(4);
  c.writeUInt32LE(counter, 0);
  return [topic, header(OP_RESTARTED, epoch, seq), c];
}

export function encodeHeartbeat(hb: Heartbeat): Buffer[] {
  return [HEARTBEAT_TOPIC, Buffer.from(JSON.stringify(hb))];
}

/** Why a PUB message is malformed is reported through `problem`; undefined means not an update. */
export function decodeUpdate(frames: Buffer[]): UpdateMsg | { problem: string } {
  const [topic, hdr, key, payload] = frames;
  if (!topic || !hdr || !key) return { problem: `expected 3 or 4 frames, got ${frames.length}` };
  if (topic.length < 2 || topic[topic.length - 1] !== 0) return { problem: 'bad topic frame' };
  if (hdr.length !== HEADER_BYTES) return { problem: `header is ${hdr.length} bytes, expected ${HEADER_BYTES}` };
  const type = topic.toString('utf8', 0, topic.length - 1);
  const op = hdr.readUInt8(0);
  const epoch = hdr.readUInt32LE(1);
  const seq = hdr.readUIntLE(5, 6);
  if (epoch === 0 || seq === 0) return { problem: 'zero epoch or sequence' };
  if (op === OP_SET) {
    if (frames.length !== 4 || !payload) return { problem: 'SET needs 4 frames' };
    return { type, op, epoch, seq, key: key.toString('utf8'), json: payload.toString('utf8') };
  }
  if (op === OP_DEL) {
    if (frames.length !== 3) return { problem: 'DEL needs 3 frames' };
    return { type, op, epoch, seq, key: key.toString('utf8') };
  }
  if (op === OP_RESTARTED) {
    if (frames.length !== 3 || key.length !== 4) return { problem: 'RESTARTED needs a 4-byte counter' };
    return { type, op, epoch, seq, key: '', counter: key.readUInt32LE(0) };
  }
  return { problem: `unknown op ${op}` };
}

export function decodeHeartbeat(frames: Buffer[]): Heartbeat | undefined {
  if (frames.length !== 2 || !frames[1] || frames[1].length > 1 << 20) return undefined;
  try {
    const hb = JSON.parse(frames[1].toString('utf8')) as Heartbeat;
    if (typeof hb !== 'object' || hb === null || typeof hb.agent !== 'string' || typeof hb.pubs !== 'object' || hb.pubs === null) {
      return undefined;
    }
    for (const v of Object.values(hb.pubs)) {
      if (!Array.isArray(v) || v.length !== 2 || !validEpoch(v[0]) || !validSeq(v[1])) return undefined;
    }
    return hb;
  } catch {
    return undefined;
  }
}

/** Positions a publisher can have: epoch a non-zero u32, sequence a u48. */
const validEpoch = (e: unknown): boolean => Number.isInteger(e) && (e as number) >= 1 && (e as number) <= 0xffffffff;
const validSeq = (s: unknown): boolean => Number.isInteger(s) && (s as number) >= 0 && (s as number) < 2 ** 48;

export function encodeSnapshot(reqId: Buffer, snap: SnapshotMsg): Buffer[] {
  const h = Buffer.allocUnsafe(SNAP_HEADER_BYTES);
  h.writeUInt32LE(snap.epoch, 0);
  h.writeUIntLE(snap.seq, 4, 6);
  h.writeUInt32LE(snap.restarted, 10);
  h.writeUInt8(snap.persistent ? 1 : 0, 14);
  const frames: Buffer[] = [reqId, Buffer.from('S'), h];
  for (const [k, v] of snap.entries) frames.push(Buffer.from(k), Buffer.from(v));
  return frames;
}

export function decodeSnapshot(frames: Buffer[]): SnapshotMsg | undefined {
  const h = frames[2];
  if (!h || h.length !== SNAP_HEADER_BYTES || (frames.length - 3) % 2 !== 0) return undefined;
  const entries: Array<[string, string]> = [];
  for (let i = 3; i < frames.length; i += 2) {
    entries.push([(frames[i] as Buffer).toString('utf8'), (frames[i + 1] as Buffer).toString('utf8')]);
  }
  const epoch = h.readUInt32LE(0);
  if (epoch === 0) return undefined;
  return { epoch, seq: h.readUIntLE(4, 6), restarted: h.readUInt32LE(10), persistent: h.readUInt8(14) === 1, entries };
}

export function reqIdFrame(id: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(id >>> 0, 0);
  return b;
}

export function readReqId(frame: Buffer | undefined): number | undefined {
  return frame && frame.length === 4 ? frame.readUInt32LE(0) : undefined;
}

/** A random non-zero 32-bit epoch; a new one for every publication instance. */
export function newEpoch(): number {
  return (Math.floor(Math.random() * 0xfffffffe) + 1) >>> 0;
}
