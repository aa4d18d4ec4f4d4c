// Onboarding requests off the broker: verify, decide (onboarding.ts), create the
// device's broker account, answer. The request names the key it is signed with,
// so its body is only trusted after the envelope verifies with that key (proof
// that the sender holds it); a request that does not verify gets no answer at all.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Value } from '@sinclair/typebox/value';
import { parseEnvelope, openEnvelope, seal } from '../api/envelope';
import { keyId, signerFor, verifierFor, type Signer } from '../lib/keys';
import { KINDS, OnboardRequestSchema, type OnboardReply, type OnboardRequest } from '../api/messages';
import { sealSecret } from '../lib/secrets';
import { topics } from '../api/topics';
import { RateLimitedLog } from '../lib/log';
import type { Logger } from '../lib/log';
import { newPassword, type BrokerProvisioner } from './broker-accounts';
import { decideOnboarding, type OnboardRefusal } from './onboarding';
import type { ControllerKeys, StateDir } from './state-dir';

/** At most one request per serial is processed per interval; the device retries the ones dropped. */
export const ONBOARD_MIN_INTERVAL_MS = 1000;

export type Publish = (topic: string, payload: Buffer, opts: { qos: 1; retain: boolean }) => Promise<void>;

export interface OnboardingCounters {
  received: number;
  granted: number;
  refused: Partial<Record<OnboardRefusal, number>>;
  /** Dropped without an answer: unverifiable, over the rate limit, already answered, or failed. */
  dropped: Record<'malformed' | 'signature' | 'rate-limited' | 'duplicate' | 'failed', number>;
}

export interface OnboardingDeps {
  state: StateDir;
  keys: ControllerKeys;
  provisioner: BrokerProvisioner;
  publish: Publish;
  log: Logger;
  newId?: () => string;
}

export class OnboardingHandler {
  private readonly signer: Signer;
  private readonly kid: string;
  private readonly lastProcessed = new Map<string, number>();
  /** Whoever holds the shared onboarding account can send garbage: one line per reason and 5 s. */
  private readonly dropLog: RateLimitedLog;
  /** One request at a time: decisions read and write the same registry records. */
  private chain: Promise<void> = Promise.resolve();
  readonly counters: OnboardingCounters = {
    received: 0, granted: 0, refused: {}, dropped: { malformed: 0, signature: 0, 'rate-limited': 0, duplicate: 0, failed: 0 },
  };

  constructor(private readonly deps: OnboardingDeps) {
    this.signer = signerFor(deps.keys.sign);
    this.kid = keyId(deps.keys.sign.publicKey);
    this.dropLog = new RateLimitedLog(deps.log);
  }

  /** Queues a request that arrived on topics.onboardRequest(serial); resolves once it is handled. */
  handle(serial: string, payload: Buffer): Promise<void> {
    this.counters.received++;
    const run = this.chain.then(() => this.process(serial, payload)).catch((err: unknown) => {
      this.counters.dropped.failed++;
      this.deps.log.error('onboarding request failed', { serial, err });
    });
    this.chain = run;
    return run;
  }

  /** Settles when every request queued so far is handled. */
  idle(): Promise<void> {
    return this.chain;
  }

  private async process(serial: string, payload: Buffer): Promise<void> {
    const verified = this.verify(payload);
    if (!verified.ok) {
      this.counters.dropped[verified.reason]++;
      this.dropLog.warn(verified.reason, 'onboarding request dropped', { serial, reason: verified.reason, error: verified.error });
      return;
    }
    const now = performance.now();
    const last = this.lastProcessed.get(serial);
    if (last !== undefined && now - last < ONBOARD_MIN_INTERVAL_MS) {
      this.counters.dropped['rate-limited']++;
      return;
    }
    this.lastProcessed.set(serial, now);
    if (this.lastProcessed.size > 100_000) this.lastProcessed.clear();

    const body = verified.body;
    const nonce = typeof (body as { nonce?: unknown })?.nonce === 'string' ? (body as { nonce: string }).nonce.slice(0, 64) : '';
    if (!Value.Check(OnboardRequestSchema, body)) {
      const first = Value.Errors(OnboardRequestSchema, body).First();
      return this.refuse(serial, nonce, 'invalid', `onboarding request is malformed: ${first ? `${first.path || '/'} ${first.message}` : 'wrong shape'}`);
    }
    if (body.serial !== serial) {
      return this.refuse(serial, nonce, 'invalid', `request for serial ${body.serial} sent on the topic of ${serial}`);
    }
    await this.decide(body);
  }

  /** Parse, then verify with the key the body names: only then is anything in the body believed. */
  private verify(payload: Buffer): { ok: true; body: unknown } | { ok: false; reason: 'malformed' | 'signature'; error: string } {
    const parsed = parseEnvelope(payload);
    if (!parsed.ok) return { ok: false, reason: 'malformed', error: parsed.error };
    let claimed: unknown;
    try {
      claimed = (JSON.parse(parsed.envelope.body) as { signPublicKey?: unknown }).signPublicKey;
    } catch {
      return { ok: false, reason: 'malformed', error: 'body is not JSON' };
    }
    if (typeof claimed !== 'string') return { ok: false, reason: 'malformed', error: 'no signPublicKey in the body' };
    let opened;
    try {
      opened = openEnvelope(payload, KINDS.onboardRequest, verifierFor(claimed));
    } catch (err) {
      return { ok: false, reason: 'malformed', error: (err as Error).message };
    }
    if (!opened.ok) return { ok: false, reason: opened.reason === 'signature' ? 'signature' : 'malformed', error: opened.error };
    return { ok: true, body: opened.body };
  }

  /** Under the serial's lock: replicas sharing the state dir must not give one serial two UUIDs. */
  private decide(req: OnboardRequest): Promise<void> {
    return this.deps.state.withLock(`device-${req.serial}`, () => this.decideLocked(req));
  }

  private async decideLocked(req: OnboardRequest): Promise<void> {
    const { state, provisioner, keys, log } = this.deps;
    const time = new Date().toISOString();
    const record = state.readDevice(req.serial);
    if (record?.lastNonce === req.nonce) {
      // Delivered twice (QoS 1): answering again would replace the password the first answer gave.
      this.counters.dropped.duplicate++;
      return;
    }
    const decision = decideOnboarding(req, record, time, this.deps.newId ?? randomUUID);
    if (!decision.reply.ok) {
      state.writeDevice(decision.record);
      return this.refuse(req.serial, req.nonce, decision.reply.code, decision.reply.error);
    }
    const password = newPassword();
    const prov = decision.provision!;
    await provisioner.upsert(prov.username, password, prov.role);
    state.writeDevice(decision.record);
    const reply: OnboardReply = {
      serial: req.serial, nonce: req.nonce, ok: true, deviceId: decision.reply.deviceId,
      broker: { username: prov.username, password: sealSecret(password, req.boxPublicKey, keys.sealingSeed) },
      time,
    };
    await this.send(reply);
    this.counters.granted++;
    log.info('device onboarded', { serial: req.serial, deviceId: decision.reply.deviceId, key: keyId(req.signPublicKey) });
  }

  private async refuse(serial: string, nonce: string, code: OnboardRefusal, error: string): Promise<void> {
    this.counters.refused[code] = (this.counters.refused[code] ?? 0) + 1;
    this.deps.log.info('onboarding refused', { serial, code, error });
    await this.send({ serial, nonce, ok: false, code, error, time: new Date().toISOString() });
  }

  private send(reply: OnboardReply): Promise<void> {
    const payload = seal(KINDS.onboardReply, reply, this.signer, this.kid);
    return this.deps.publish(topics.onboardReply(reply.serial), payload, { qos: 1, retain: true });
  }
}
