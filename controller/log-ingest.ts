// Log batches from devices: verified like every device message (the key of the
// device the topic names, the same device in the body, the schema), then the
// gzip must decompress within a bound and hold LogLines. A good batch is stored
// durably, once per (device, seq), and only then acknowledged: a signed log-ack
// to the device, coalesced per device over a few ms. A repeat (a resend after a
// lost ack or a reconnect) is acknowledged again and not stored twice. A batch
// that fails a check is counted by reason and never acknowledged.
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { seal } from '../api/envelope';
import { KINDS, LogsBodySchema, type LogAckBody, type LogsBody } from '../api/messages';
import { parseTopic, topics } from '../api/topics';
import { keyId, signerFor, type Signer } from '../lib/keys';
import { RateLimitedLog, type Logger } from '../lib/log';
import { openDeviceMessage } from './ingest';
import { decodeBatch, type LogStore } from './log-store';
import type { ControllerKeys, StateDir } from './state-dir';

/** Acks for one device within this window go in one message. */
export const ACK_COALESCE_MS = 20;
/** LogAckBody allows this many seqs per message. */
const MAX_SEQS_PER_ACK = 1000;

export type LogRejectReason =
  | 'unknown-device' | 'malformed' | 'kind' | 'signature' | 'body' | 'schema' | 'device-mismatch'
  | 'bad-gzip' | 'too-large' | 'bad-line' | 'store-failed';

export interface LogIngestCounters {
  received: number;
  stored: number;
  /** Seqs already stored, acknowledged again. */
  duplicates: number;
  /** Seqs acknowledged (each repeat counts again). */
  acked: number;
  ackFailures: number;
  rejected: Partial<Record<LogRejectReason, number>>;
}

export type LogIngestResult =
  | { accepted: true; stored: boolean }
  | { accepted: false; reason: LogRejectReason | 'ignored'; error?: string };

export interface LogIngestDeps {
  state: StateDir;
  store: LogStore;
  keys: ControllerKeys;
  /** QoS 1, not retained; resolves on the broker's PUBACK. */
  publish: (topic: string, payload: Buffer) => Promise<void>;
  log: Logger;
  clock?: () => Date;
  replica?: string;
  coalesceMs?: number;
}

const BODY_CHECK = TypeCompiler.Compile(LogsBodySchema);

export class LogIngest {
  readonly counters: LogIngestCounters = { received: 0, stored: 0, duplicates: 0, acked: 0, ackFailures: 0, rejected: {} };
  private readonly warn: RateLimitedLog;
  private readonly signer: Signer;
  private readonly kid: string;
  /** device → seqs stored (or found stored) and not yet acknowledged. */
  private readonly pending = new Map<string, Set<number>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly sending = new Set<Promise<void>>();

  constructor(private readonly d: LogIngestDeps) {
    this.warn = new RateLimitedLog(d.log);
    this.signer = signerFor(d.keys.sign);
    this.kid = keyId(d.keys.sign.publicKey);
  }

  handle(topic: string, payload: Buffer): LogIngestResult {
    this.counters.received++;
    const r = this.process(topic, payload);
    if (r.accepted) {
      if (r.stored) this.counters.stored++;
      else this.counters.duplicates++;
    } else if (r.reason !== 'ignored') {
      this.counters.rejected[r.reason] = (this.counters.rejected[r.reason] ?? 0) + 1;
      this.warn.warn(r.reason, 'log batch rejected', { topic, reason: r.reason, error: r.error });
    }
    return r;
  }

  /** Sends the acks still waiting for their window, and waits for every ack in flight (at close). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.sendAcks();
    await Promise.all([...this.sending]);
  }

  private process(topic: string, payload: Buffer): LogIngestResult {
    const t = parseTopic(topic);
    if (t?.type !== 'logs' || payload.length === 0) return { accepted: false, reason: 'ignored' };
    const opened = openDeviceMessage(this.d.state, t.uuid, KINDS.logs, payload, BODY_CHECK);
    if (!opened.ok) return { accepted: false, reason: opened.reason, error: opened.error };
    const body = opened.body;
    if (this.d.store.has(t.uuid, body.seq)) {
      // A resend (its ack was lost, or the link dropped): the signed copy stored first stands.
      this.d.log.debug('log batch stored already', { deviceId: t.uuid, seq: body.seq });
      this.queueAck(t.uuid, body.seq);
      return { accepted: true, stored: false };
    }
    const decoded = decodeBatch(body.gzip);
    if (!decoded.ok) return { accepted: false, reason: decoded.reason, error: `batch ${body.seq}: ${decoded.error}` };
    let outcome: 'stored' | 'duplicate';
    try {
      outcome = this.d.store.store(t.uuid, stored(body, (this.d.clock ?? (() => new Date()))().toISOString(), this.d.replica));
    } catch (err) {
      // A full or failing disk: no ack, so the device keeps the batch and sends it again.
      return { accepted: false, reason: 'store-failed', error: `batch ${body.seq}: ${(err as Error).message}` };
    }
    this.d.log.debug(outcome === 'stored' ? 'log batch stored' : 'log batch stored already (by another replica)', { deviceId: t.uuid, seq: body.seq, lines: decoded.lines.length });
    this.queueAck(t.uuid, body.seq);
    return { accepted: true, stored: outcome === 'stored' };
  }

  private queueAck(uuid: string, seq: number): void {
    let seqs = this.pending.get(uuid);
    if (!seqs) this.pending.set(uuid, (seqs = new Set()));
    seqs.add(seq);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.sendAcks();
    }, this.d.coalesceMs ?? ACK_COALESCE_MS);
  }

  private sendAcks(): void {
    const time = (this.d.clock ?? (() => new Date()))().toISOString();
    for (const [uuid, set] of this.pending) {
      const all = [...set].sort((a, b) => a - b);
      for (let i = 0; i < all.length; i += MAX_SEQS_PER_ACK) {
        const seqs = all.slice(i, i + MAX_SEQS_PER_ACK);
        const body: LogAckBody = { deviceId: uuid, seqs, time };
        const p = this.d.publish(topics.logAck(uuid), seal(KINDS.logAck, body, this.signer, this.kid)).then(
          () => { this.counters.acked += seqs.length; },
          (err: Error) => {
            // The device sends the batches again when no ack comes; they are acknowledged then.
            this.counters.ackFailures++;
            this.warn.warn('ack-failed', 'log acknowledgement not sent', { deviceId: uuid, seqs: seqs.length, error: err.message });
          },
        );
        this.sending.add(p);
        void p.finally(() => this.sending.delete(p));
      }
    }
    this.pending.clear();
  }
}

function stored(body: LogsBody, receivedAt: string, replica: string | undefined): Parameters<LogStore['store']>[1] {
  const { deviceId: _device, ...rest } = body;
  return { ...rest, receivedAt, ...(replica ? { replica } : {}) };
}
