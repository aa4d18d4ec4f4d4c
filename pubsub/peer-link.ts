// A process's connection to one owner's endpoint: a SUB socket for updates and
// heartbeats and a DEALER socket for snapshots, shared by every subscription in
// the process to that owner's collections. Each collection has one Mirror here,
// whatever the number of subscriptions to it.
import { Dealer, Subscriber } from 'zeromq';
import { RateLimitedLog, type Logger } from '../lib/log';
import { HARD_MAX_VALUE_BYTES, MAX_KEY_BYTES, keyProblem, schemaErrors, type CollectionSpec } from './catalog';
import { deepFreeze } from './equal';
import { Mirror, type MirrorEvent, type MirrorSnapshot, type MirrorUpdate, type Step } from './mirror';
import { endpointPaths, ipc } from './paths';
import { PersistentStore } from './persistent-store';
import { receiveEach } from './receive-loop';
import { SendQueue } from './send-queue';
import type { Subscription } from './subscription';
import {
  HEARTBEAT_TOPIC,
  OP_DEL,
  OP_SET,
  decodeHeartbeat,
  decodeSnapshot,
  decodeUpdate,
  readReqId,
  reqIdFrame,
  topicFrame,
  type UpdateMsg,
} from './wire';

export interface LinkOptions {
  owner: string;
  runDir: string;
  persistDir: string;
  log: Logger;
  /** First snapshot timeout; doubles on each retry up to maxSnapshotTimeoutMs. */
  snapshotTimeoutMs: number;
  maxSnapshotTimeoutMs: number;
}

interface Channel {
  spec: CollectionSpec;
  mirror: Mirror;
  views: Set<Subscription>;
  reqId?: number;
  timer?: NodeJS.Timeout;
  attempts: number;
}

/** Counts of what this link refused, for tests and ipcmonitor. */
export interface LinkStats {
  malformed: number;
  invalid: number;
  resyncs: number;
}

let nextReqId = 1;

export class PeerLink {
  readonly owner: string;
  readonly stats: LinkStats = { malformed: 0, invalid: 0, resyncs: 0 };
  private readonly channels = new Map<string, Channel>();
  private readonly byReqId = new Map<number, Channel>();
  private readonly sub: Subscriber;
  private readonly dealer: Dealer;
  private readonly dealerQueue: SendQueue;
  private readonly warn: RateLimitedLog;
  private closed = false;

  constructor(private readonly opts: LinkOptions) {
    this.owner = opts.owner;
    this.warn = new RateLimitedLog(opts.log);
    const paths = endpointPaths(opts.runDir, opts.owner);
    const frameLimit = HARD_MAX_VALUE_BYTES + MAX_KEY_BYTES + 1024;
    this.sub = new Subscriber({ linger: 0, maxMessageSize: frameLimit, receiveHighWaterMark: 10_000, reconnectInterval: 100, reconnectMaxInterval: 1000 });
    this.dealer = new Dealer({ linger: 0, maxMessageSize: frameLimit, sendTimeout: 0, sendHighWaterMark: 64, reconnectInterval: 100, reconnectMaxInterval: 1000 });
    this.dealerQueue = new SendQueue(this.dealer);
    this.sub.subscribe(HEARTBEAT_TOPIC);
    this.sub.connect(ipc(paths.pub));
    this.dealer.connect(ipc(paths.req));
    void receiveEach(this.sub, (f) => this.onMessage(f), opts.log, { owner: opts.owner, socket: 'updates' });
    void receiveEach(this.dealer, (f) => this.onReply(f), opts.log, { owner: opts.owner, socket: 'snapshots' });
  }

  get channelCount(): number {
    return this.channels.size;
  }

  mirrorOf(type: string): Mirror | undefined {
    return this.channels.get(type)?.mirror;
  }

  /** Adds a subscription; the first one for a type creates its mirror and asks for a snapshot. */
  attach(spec: CollectionSpec, view: Subscription): void {
    let ch = this.channels.get(spec.type);
    if (!ch) {
      ch = { spec, mirror: new Mirror(), views: new Set([view]), attempts: 0 };
      view.bindMirror(ch.mirror);
      this.channels.set(spec.type, ch);
      this.sub.subscribe(topicFrame(spec.type));
      if (spec.persistent) view.deliver(ch.mirror.preload(this.readPersisted(spec)));
      this.requestSnapshot(ch, 'new subscription');
      return;
    }
    view.bindMirror(ch.mirror);
    ch.views.add(view);
    view.deliver(replay(ch.mirror));
  }

  detach(view: Subscription): void {
    const ch = this.channels.get(view.type);
    if (!ch) return;
    ch.views.delete(view);
    if (ch.views.size > 0) return;
    clearTimeout(ch.timer);
    if (ch.reqId !== undefined) this.byReqId.delete(ch.reqId);
    this.channels.delete(view.type);
    this.sub.unsubscribe(topicFrame(view.type));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ch of this.channels.values()) clearTimeout(ch.timer);
    this.sub.close();
    this.dealer.close();
  }

  private onMessage(frames: Buffer[]): void {
    if (frames[0]?.equals(HEARTBEAT_TOPIC)) {
      const hb = decodeHeartbeat(frames);
      if (!hb) return this.malformed('bad heartbeat');
      for (const ch of this.channels.values()) {
        const at = hb.pubs[ch.spec.type];
        if (at) this.handle(ch, ch.mirror.onHeartbeat(at[0], at[1]));
      }
      return;
    }
    const msg = decodeUpdate(frames);
    if ('problem' in msg) return this.malformed(msg.problem);
    const ch = this.channels.get(msg.type);
    if (!ch) return; // a collection nobody here subscribes to (any longer)
    this.handle(ch, ch.mirror.onUpdate(this.toMirrorUpdate(ch, msg)));
  }

  private toMirrorUpdate(ch: Channel, msg: UpdateMsg): MirrorUpdate {
    const { epoch, seq, key } = msg;
    if (msg.op === OP_DEL) return { op: 'del', epoch, seq, key };
    if (msg.op !== OP_SET) return { op: 'restarted', epoch, seq, counter: msg.counter ?? 0 };
    // Parsing, checking and freezing cost most of an update: skip them for one the mirror will not use.
    if (!ch.mirror.wants(epoch, seq)) return { op: 'invalid', epoch, seq, key };
    const value = this.validate(ch.spec, key, msg.json as string);
    return value === INVALID ? { op: 'invalid', epoch, seq, key } : { op: 'set', epoch, seq, key, value, json: msg.json };
  }

  private validate(spec: CollectionSpec, key: string, json: string): unknown {
    // A key publish() would refuse (empty, control characters, too long) is as bad as a bad value.
    const badKey = keyProblem(key);
    if (badKey) {
      this.stats.invalid++;
      this.warn.warn(`key:${spec.type}`, 'received key is unusable, dropped', { owner: this.owner, collection: spec.type, key: key.slice(0, 64), problem: badKey });
      return INVALID;
    }
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      this.stats.invalid++;
      this.warn.warn(`json:${spec.type}`, 'received value is not JSON, dropped', { owner: this.owner, collection: spec.type, key });
      return INVALID;
    }
    if (!spec.check.Check(value)) {
      this.stats.invalid++;
      this.warn.warn(`schema:${spec.type}`, 'received value fails its schema, dropped', {
        owner: this.owner, collection: spec.type, key, problems: schemaErrors(spec, value),
      });
      return INVALID;
    }
    return deepFreeze(value);
  }

  private onReply(frames: Buffer[]): void {
    const id = readReqId(frames[0]);
    const ch = id === undefined ? undefined : this.byReqId.get(id);
    if (!ch || id === undefined) return; // a late answer to a request we already retried
    const op = frames[1]?.toString();
    if (op === 'N') {
      // The owner runs but has not created this publication yet; its heartbeat will say when.
      this.settleRequest(ch, id);
      ch.mirror.status = 'waiting';
      return;
    }
    const snap = op === 'S' ? decodeSnapshot(frames) : undefined;
    if (!snap) return this.malformed('bad snapshot reply');
    this.settleRequest(ch, id);
    const entries = new Map<string, unknown>();
    const texts = new Map<string, string>();
    const invalidKeys = new Set<string>();
    for (const [key, json] of snap.entries) {
      const value = this.validate(ch.spec, key, json);
      if (value === INVALID) invalidKeys.add(key);
      else {
        entries.set(key, value);
        texts.set(key, json);
      }
    }
    const mirrorSnap: MirrorSnapshot = { epoch: snap.epoch, seq: snap.seq, restarted: snap.restarted, entries, invalidKeys, texts };
    this.handle(ch, ch.mirror.onSnapshot(mirrorSnap));
  }

  private handle(ch: Channel, step: Step): void {
    if (step.events.length) for (const v of ch.views) v.deliver(step.events);
    if (step.resync) this.requestSnapshot(ch, step.reason ?? 'resync');
  }

  private requestSnapshot(ch: Channel, reason: string): void {
    if (this.closed) return;
    if (ch.reqId !== undefined) this.byReqId.delete(ch.reqId);
    clearTimeout(ch.timer);
    ch.mirror.beginSync();
    this.stats.resyncs++;
    const id = nextReqId++ >>> 0;
    ch.reqId = id;
    this.byReqId.set(id, ch);
    this.opts.log.debug('requesting snapshot', { owner: this.owner, collection: ch.spec.type, reason, attempt: ch.attempts });
    this.dealerQueue.push([reqIdFrame(id), Buffer.from('S'), Buffer.from(ch.spec.type)]);
    const delay = Math.min(this.opts.maxSnapshotTimeoutMs, this.opts.snapshotTimeoutMs * 2 ** ch.attempts);
    ch.timer = setTimeout(() => {
      ch.attempts++;
      this.requestSnapshot(ch, 'no answer from the publisher');
    }, delay);
  }

  private settleRequest(ch: Channel, id: number): void {
    this.byReqId.delete(id);
    clearTimeout(ch.timer);
    ch.timer = undefined;
    ch.reqId = undefined;
    ch.attempts = 0;
  }

  private malformed(problem: string): void {
    this.stats.malformed++;
    this.warn.warn(`malformed:${problem}`, 'malformed bus message dropped', { owner: this.owner, problem });
  }

  private readPersisted(spec: CollectionSpec): Map<string, unknown> {
    const dir = PersistentStore.dirFor(this.opts.persistDir, this.owner, spec.type);
    const out = new Map<string, unknown>();
    for (const [key, value] of new PersistentStore(dir).load({ readOnly: true }).entries) {
      if (spec.check.Check(value)) out.set(key, deepFreeze(value));
    }
    return out;
  }
}

const INVALID = Symbol('invalid');

/** What a subscription that joins a live mirror must hear to catch up. */
function replay(mirror: Mirror): MirrorEvent[] {
  const events: MirrorEvent[] = [];
  for (const [key, value] of mirror.entries) events.push({ kind: 'create', key, value });
  if (mirror.synchronized) events.push({ kind: 'synchronized' });
  if (mirror.restarted > 0) events.push({ kind: 'restarted', counter: mirror.restarted });
  return events;
}
