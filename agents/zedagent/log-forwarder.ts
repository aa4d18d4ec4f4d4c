// Log batches to the controller: every LogBatch logmanager keeps on the bus goes
// up as a signed `logs` message (QoS 1), a few at a time in seq order, until the
// controller's signed `log-ack` says it stored it; zedagent then publishes a
// LogBatchAck and logmanager deletes the batch (withdrawing it, and zedagent its
// ack). A batch not acknowledged within 30 s (then 60 s, ... up to 10 min), or
// refused by the client, is sent again: the controller stores each seq once. One
// in flight when the link went down is sent again by mqtt.js itself at the reconnect.
//
// Beside the outbox, not through it: logmanager's disk queue already keeps the
// batches (the outbox would write ~130 KB a batch to disk a second time), the
// outbox forgets a message at the broker's PUBACK while a batch is done only at
// the controller's ack, and its latest-value-per-key rule means nothing for a
// batch. Info is not starved: on every connect the outbox is attached first, so
// device info is on the wire before any batch, and at most `window` batches are
// ever outstanding, so new info waits behind a few batches at most.
import { openEnvelope, seal } from '../../api/envelope';
import { KINDS, LogAckBodySchema, type LogAckBody, type LogsBody } from '../../api/messages';
import { topics } from '../../api/topics';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Signer, Verifier } from '../../lib/keys';
import { RateLimitedLog } from '../../lib/log';
import { LogBatchAckCollection, LogBatchCollection, logBatchKey, type LogBatch } from '../../pubsub/collections';
import type { AgentContext } from '../agent';
import type { OutMessage } from './outbox';

/** Batches outstanding (sent, not yet acknowledged) at once: each is up to ~130 KB on the wire. */
export const LOG_SEND_WINDOW = 3;
/** A batch the controller has not acknowledged by then is sent again; each further time waits twice as long. */
export const LOG_RESEND_AFTER_MS = 30_000;
/** The longest wait between resends (a controller that refuses a batch is not asked again every 30 s). */
export const LOG_RESEND_MAX_MS = 10 * 60_000;

interface Slot {
  /** When it was last sent on this link; undefined: due. */
  sentAt?: number;
  acked: boolean;
  sends: number;
}

export interface WindowOptions {
  window: number;
  resendAfterMs: number;
  resendMaxMs: number;
}

/**
 * Which batches to send, and when to look again: no I/O and no clock of its own. A batch is
 * outstanding from its send until its ack, a link loss, or its resend delay (resendAfterMs,
 * doubling with each send up to resendMaxMs).
 */
export class LogSendWindow {
  private readonly slots = new Map<number, Slot>();

  constructor(private readonly opts: WindowOptions = { window: LOG_SEND_WINDOW, resendAfterMs: LOG_RESEND_AFTER_MS, resendMaxMs: LOG_RESEND_MAX_MS }) {}

  private delayOf(s: Slot): number {
    return Math.min(this.opts.resendAfterMs * 2 ** Math.max(0, s.sends - 1), this.opts.resendMaxMs);
  }

  get size(): number {
    return this.slots.size;
  }

  add(seq: number): void {
    if (!this.slots.has(seq)) this.slots.set(seq, { acked: false, sends: 0 });
  }

  remove(seq: number): void {
    this.slots.delete(seq);
  }

  /** The controller stored it; false for a seq not (or no longer) here. */
  ack(seq: number): boolean {
    const s = this.slots.get(seq);
    if (!s) return false;
    s.acked = true;
    delete s.sentAt;
    return true;
  }

  isAcked(seq: number): boolean {
    return this.slots.get(seq)?.acked === true;
  }

  /**
   * A send was refused (not connected, or the client refused it): the batch is due again at the next
   * look. A batch in flight when the link went down is not: mqtt.js keeps it and sends it again on the
   * reconnect (clean:false), so sending it ourselves too would put it on the wire twice; its resend
   * delay covers a client that lost it.
   */
  failed(seq: number): void {
    const s = this.slots.get(seq);
    if (s) delete s.sentAt;
  }

  /** Seqs to send now, lowest first, marked as sent at `now`; with how many times each was sent before. */
  due(now: number): Array<{ seq: number; resend: boolean }> {
    const unacked = [...this.slots.entries()].filter(([, s]) => !s.acked).sort((a, b) => a[0] - b[0]);
    const fresh = (s: Slot): boolean => s.sentAt !== undefined && now - s.sentAt < this.delayOf(s);
    let outstanding = unacked.filter(([, s]) => fresh(s)).length;
    const out: Array<{ seq: number; resend: boolean }> = [];
    for (const [seq, s] of unacked) {
      if (outstanding >= this.opts.window) break;
      if (fresh(s)) continue;
      out.push({ seq, resend: s.sends > 0 });
      s.sentAt = now;
      s.sends++;
      outstanding++;
    }
    return out;
  }

  /** When the oldest outstanding batch becomes due again (undefined: nothing outstanding). */
  nextWakeAt(): number | undefined {
    let at: number | undefined;
    for (const s of this.slots.values()) {
      if (s.acked || s.sentAt === undefined) continue;
      const t = s.sentAt + this.delayOf(s);
      if (at === undefined || t < at) at = t;
    }
    return at;
  }
}

export interface LogForwarderDeps {
  deviceId: string;
  signer: Signer;
  kid: string;
  /** The controller's key: acks signed by anyone else are refused. */
  controller: Verifier;
  /** QoS 1 publish on the link; rejects when not connected. */
  send: (msg: OutMessage) => Promise<void>;
  window?: Partial<WindowOptions>;
}

export interface LogForwarderCounters {
  sent: number;
  resent: number;
  acked: number;
  /** Acks refused: not signed by the controller, not for this device, malformed. */
  badAcks: number;
}

const ACK_CHECK = TypeCompiler.Compile(LogAckBodySchema);

/** A log-ack is believed only signed by the controller, in shape and for this device. */
export function verifyLogAck(payload: Buffer, controller: Verifier, deviceId: string): { ok: true; body: LogAckBody } | { ok: false; error: string } {
  const opened = openEnvelope(payload, KINDS.logAck, controller);
  if (!opened.ok) return { ok: false, error: opened.error };
  const body = opened.body;
  if (!ACK_CHECK.Check(body)) {
    const e = ACK_CHECK.Errors(body).First();
    return { ok: false, error: `log-ack body: ${e ? `${e.path || '/'} ${e.message}` : 'wrong shape'}` };
  }
  if (body.deviceId !== deviceId) return { ok: false, error: `log-ack is for device ${body.deviceId}` };
  return { ok: true, body };
}

export class LogForwarder {
  readonly counters: LogForwarderCounters = { sent: 0, resent: 0, acked: 0, badAcks: 0 };
  private readonly window: LogSendWindow;
  private readonly batches;
  private readonly acks;
  private readonly warn: RateLimitedLog;
  private connected = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: AgentContext, private readonly d: LogForwarderDeps) {
    this.window = new LogSendWindow({ window: LOG_SEND_WINDOW, resendAfterMs: LOG_RESEND_AFTER_MS, resendMaxMs: LOG_RESEND_MAX_MS, ...d.window });
    this.warn = new RateLimitedLog(ctx.log);
    this.acks = ctx.publish(LogBatchAckCollection);
    this.batches = ctx.subscribe(LogBatchCollection, {
      create: (_key, b) => this.added(b),
      modify: (_key, b) => this.added(b),
      delete: (key, b) => {
        this.window.remove(b.seq);
        this.acks.unpublish(key);
      },
    });
  }

  /** The link is up (after the outbox was attached: info goes first). */
  attach(): void {
    this.connected = true;
    this.pump();
  }

  detach(): void {
    this.connected = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A `log-ack` from the controller: each stored seq still on the bus gets its LogBatchAck. */
  receiveAck(payload: Buffer): void {
    const v = verifyLogAck(payload, this.d.controller, this.d.deviceId);
    if (!v.ok) {
      this.counters.badAcks++;
      this.warn.warn('bad-ack', 'log acknowledgement refused', { error: v.error });
      return;
    }
    const body = v.body;
    for (const seq of body.seqs) {
      if (this.window.isAcked(seq) || !this.window.ack(seq)) continue; // a repeat, or a batch already withdrawn
      this.counters.acked++;
      this.acks.publish(logBatchKey(seq), { seq, storedAt: body.time });
    }
    this.pump();
  }

  private added(b: Readonly<LogBatch>): void {
    this.window.add(b.seq);
    this.pump();
  }

  private pump(): void {
    if (!this.connected || this.ctx.signal.aborted) return;
    const now = Date.now();
    for (const { seq, resend } of this.window.due(now)) {
      const batch = this.batches.get(logBatchKey(seq));
      if (!batch) {
        this.window.remove(seq);
        continue;
      }
      if (resend) this.counters.resent++;
      else this.counters.sent++;
      // A refused publish goes again at the next look (a new batch, an ack, the reconnect), not at once:
      // no tight retry loop on a publish that keeps failing.
      this.d.send(this.message(batch)).catch((err: Error) => {
        this.window.failed(seq);
        this.ctx.log.debug('log batch not sent', { seq, error: err.message });
      });
    }
    this.schedule(now);
  }

  private schedule(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const at = this.window.nextWakeAt();
    if (at === undefined) return;
    this.timer = this.ctx.setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(0, at - now));
  }

  private message(b: Readonly<LogBatch>): OutMessage {
    const body: LogsBody = {
      deviceId: this.d.deviceId, seq: b.seq, firstAt: b.firstAt, lastAt: b.lastAt, lines: b.lines, rawBytes: b.rawBytes, gzip: b.gzip,
      ...(b.droppedBefore ? { droppedBefore: { ...b.droppedBefore } } : {}),
    };
    return { topic: topics.logs(this.d.deviceId), payload: seal(KINDS.logs, body, this.d.signer, this.d.kid).toString(), retain: false };
  }
}
