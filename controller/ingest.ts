// What devices send (info, status, metrics) into the state dir. Each message is
// verified with the signing key registered for the device its topic names, must
// name that same device in its body, and must fit its schema; an info older than
// the one stored for the same object (an old retained message, or a replay) is
// dropped. Counters say what came in and why anything was turned away.
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { openEnvelope } from '../api/envelope';
import { verifierFor } from '../lib/keys';
import { InfoBodySchema, KINDS, MetricsBodySchema, StatusBodySchema, type InfoBody, type MetricsBody, type StatusBody } from '../api/messages';
import { AppMetricsSchema, DeviceMetricsSchema, INFO_SCHEMAS } from '../api/info';
import { INFO_KINDS, parseTopic, type InfoKind, type ParsedTopic } from '../api/topics';
import { RateLimitedLog, type Logger } from '../lib/log';
import type { StateDir } from './state-dir';

export type RejectReason =
  | 'unknown-device' | 'malformed' | 'kind' | 'signature' | 'body' | 'schema'
  | 'device-mismatch' | 'topic-mismatch' | 'stale' | 'duplicate' | 'stale-status';

export interface IngestCounters {
  received: number;
  accepted: number;
  rejected: Partial<Record<RejectReason, number>>;
  /** Not for the controller: unknown topics, empty payloads (a retained message being cleared). */
  ignored: number;
}

export type IngestResult = { accepted: true } | { accepted: false; reason: RejectReason | 'ignored'; error?: string };

// Compiled once: the controller checks every message a fleet sends.
const BODY_CHECKS = {
  info: TypeCompiler.Compile(InfoBodySchema),
  metrics: TypeCompiler.Compile(MetricsBodySchema),
  status: TypeCompiler.Compile(StatusBodySchema),
};
const VALUE_CHECKS = Object.fromEntries(INFO_KINDS.map((k) => [k, TypeCompiler.Compile(INFO_SCHEMAS[k])])) as Record<InfoKind, TypeCheck<TSchema>>;
const DEVICE_METRICS = TypeCompiler.Compile(DeviceMetricsSchema);
const APP_METRICS = TypeCompiler.Compile(AppMetricsSchema);

function firstError(check: TypeCheck<TSchema>, value: unknown, prefix = ''): string {
  const e = check.Errors(value).First();
  return e ? `${prefix}${e.path || '/'} ${e.message}` : 'wrong shape';
}

export type DeviceMessageRefusal = { ok: false; reason: 'unknown-device' | 'malformed' | 'kind' | 'signature' | 'body' | 'schema' | 'device-mismatch'; error: string };

/**
 * A device's message on its own topic, opened as every ingest opens one: the device is onboarded, its
 * key signed the envelope as `kind`, the body has its schema and names the topic's device.
 */
export function openDeviceMessage<S extends TSchema>(
  state: StateDir, uuid: string, kind: string, payload: Buffer, check: TypeCheck<S>,
): { ok: true; body: Static<S> } | DeviceMessageRefusal {
  const device = state.deviceById(uuid);
  if (!device?.signPublicKey) return { ok: false, reason: 'unknown-device', error: `no onboarded device ${uuid}` };
  const opened = openEnvelope(payload, kind, verifierFor(device.signPublicKey));
  if (!opened.ok) return { ok: false, reason: opened.reason, error: opened.error };
  const body = opened.body;
  if (!check.Check(body)) return { ok: false, reason: 'schema', error: firstError(check, body) };
  const named = (body as { deviceId?: unknown }).deviceId;
  if (named !== uuid) return { ok: false, reason: 'device-mismatch', error: `body names device ${String(named)}` };
  return { ok: true, body };
}

/** The parts of a body the envelope schema leaves open: an info value, the metrics of the device and its apps. */
function contentError(t: ParsedTopic, body: unknown): string | undefined {
  if (t.type === 'info') {
    const b = body as InfoBody;
    if (b.deleted) return b.value === undefined ? undefined : '/value must be absent with deleted';
    if (b.value === undefined) return '/value is required unless deleted';
    const check = VALUE_CHECKS[b.kind];
    if (!check.Check(b.value)) return firstError(check, b.value, '/value');
    const valueId = (b.value as { id?: unknown }).id;
    return valueId === undefined || valueId === b.id ? undefined : `/value/id ${String(valueId)} is not the object's id ${b.id}`;
  }
  if (t.type === 'metrics') {
    const b = body as MetricsBody;
    if (!DEVICE_METRICS.Check(b.device)) return firstError(DEVICE_METRICS, b.device, '/device');
    const i = b.apps.findIndex((a) => !APP_METRICS.Check(a));
    return i < 0 ? undefined : firstError(APP_METRICS, b.apps[i], `/apps/${i}`);
  }
  return undefined;
}

export class Ingest {
  readonly counters: IngestCounters = { received: 0, accepted: 0, rejected: {}, ignored: 0 };
  private readonly warn: RateLimitedLog;

  constructor(
    private readonly state: StateDir,
    log: Logger,
    private readonly clock: () => Date = () => new Date(),
    private readonly replica?: string,
  ) {
    this.warn = new RateLimitedLog(log);
  }

  handle(topic: string, payload: Buffer): IngestResult {
    this.counters.received++;
    const result = this.process(topic, payload);
    if (result.accepted) this.counters.accepted++;
    else if (result.reason === 'ignored') this.counters.ignored++;
    else {
      this.counters.rejected[result.reason] = (this.counters.rejected[result.reason] ?? 0) + 1;
      // A retained message seen again (every resubscribe brings them) is normal: counted, not logged.
      if (result.reason !== 'duplicate') this.warn.warn(result.reason, 'device message rejected', { topic, reason: result.reason, error: result.error });
    }
    return result;
  }

  private process(topic: string, payload: Buffer): IngestResult {
    const t = parseTopic(topic);
    if (!t || (t.type !== 'info' && t.type !== 'metrics' && t.type !== 'status') || payload.length === 0) {
      return { accepted: false, reason: 'ignored' };
    }
    const kind = t.type === 'info' ? KINDS.info : t.type === 'metrics' ? KINDS.metrics : KINDS.status;
    const opened = openDeviceMessage(this.state, t.uuid, kind, payload, BODY_CHECKS[t.type] as TypeCheck<TSchema>);
    if (!opened.ok) return { accepted: false, reason: opened.reason, error: opened.error };
    const body = opened.body;
    const bad = contentError(t, body);
    if (bad) return { accepted: false, reason: 'schema', error: bad };
    const receivedAt = this.clock().toISOString();
    if (t.type === 'info') {
      const r = this.storeInfo(t, body as InfoBody, receivedAt);
      if (!r.accepted) return r;
    } else if (t.type === 'status') {
      const r = this.storeStatus(t.uuid, body as StatusBody, receivedAt);
      if (!r.accepted) return r;
    }
    this.state.appendEvent(t.uuid, { receivedAt, type: t.type, body, ...(this.replica ? { replica: this.replica } : {}) });
    return { accepted: true };
  }

  private storeInfo(t: Extract<ParsedTopic, { type: 'info' }>, body: InfoBody, receivedAt: string): IngestResult {
    if (body.kind !== t.kind || body.id !== t.id) {
      return { accepted: false, reason: 'topic-mismatch', error: `body is ${body.kind}/${body.id}, topic ${t.kind}/${t.id}` };
    }
    const stored = this.state.readInfo(t.uuid, t.kind, t.id);
    if (stored && body.seq < stored.body.seq) return { accepted: false, reason: 'stale', error: `seq ${body.seq} < stored ${stored.body.seq}` };
    if (stored && body.seq === stored.body.seq) return { accepted: false, reason: 'duplicate' };
    this.state.writeInfo(t.uuid, t.kind, t.id, { receivedAt, body });
    return { accepted: true };
  }

  /**
   * A status has no seq: an offline from another process start (bootId) than the stored online is
   * the late will of an old connection, and anything older than the stored one is stale.
   */
  private storeStatus(uuid: string, body: StatusBody, receivedAt: string): IngestResult {
    const stored = this.state.readStatus(uuid)?.body;
    if (stored) {
      const lateWill = body.state === 'offline' && stored.state === 'online' && stored.bootId !== body.bootId && body.time <= stored.time;
      const older = stored.bootId === body.bootId && body.time < stored.time;
      if (lateWill || older) return { accepted: false, reason: 'stale-status', error: `${body.state} of ${body.bootId} at ${body.time}` };
    }
    this.state.writeStatus(uuid, { receivedAt, body });
    return { accepted: true };
  }
}
