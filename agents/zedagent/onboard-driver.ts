// Onboarding: ask the controller, with the serial and token this device was
// provisioned with and its public keys, signed with its own key; wait for the
// controller's signed answer to that very request; on success keep the UUID and
// the broker account (password still sealed). Refusals are retried with a
// bounded exponential backoff, each one logged with the controller's reason.
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { openEnvelope, seal } from '../../api/envelope';
import { keyId, signerFor, verifierFor } from '../../lib/keys';
import { KINDS, OnboardReplySchema, type OnboardReply, type OnboardRequest } from '../../api/messages';
import { openSecret } from '../../lib/secrets';
import { topics } from '../../api/topics';
import type { Provisioning } from '../../api/provisioning';
import { backoffDelay, sleep, type BackoffPolicy } from '../../lib/backoff';
import { writeOnboarded, type DeviceKeys, type Onboarded } from '../../lib/device-identity';
import type { Dirs } from '../../lib/dirs';
import type { Logger } from '../../lib/log';
import { mqttOptions } from '../../lib/mqtt-options';
import { VERSION } from '../../lib/version';

const checkReply = TypeCompiler.Compile(OnboardReplySchema);

export interface OnboardOptions {
  dirs: Dirs;
  provisioning: Provisioning;
  keys: DeviceKeys;
  log: Logger;
  signal: AbortSignal;
  /** Backoff between attempts grows from 1 s to this (EVE's client: 10 min). */
  maxBackoffMs?: number;
  /** How long one attempt waits for the answer. */
  attemptTimeoutMs?: number;
  /** Gives up after this long (the tool's --timeout); undefined: never. */
  deadlineMs?: number;
  /** Told of every attempt that did not succeed: the controller's refusal code, or none when unreachable. */
  onRefused?: (code: string | undefined, error: string) => void;
}

export class OnboardingRefused extends Error {
  override name = 'OnboardingRefused';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export async function onboard(o: OnboardOptions): Promise<Onboarded> {
  const prov = o.provisioning;
  const signer = signerFor(o.keys.sign);
  const kid = keyId(o.keys.sign.publicKey);
  const controller = verifierFor(prov.controllerPublicKey);
  const client = mqtt.connect(prov.broker.url, mqttOptions(
    { url: prov.broker.url, ...(prov.broker.caPem ? { caPem: prov.broker.caPem } : {}), username: prov.onboarding.username, password: prov.onboarding.password },
    { clientId: `onboard-${prov.serial}-${randomBytes(3).toString('hex')}`, clean: true },
  ));
  const replies: Array<(r: OnboardReply) => void> = [];
  let lastLinkError: string | undefined;
  client.on('error', (err) => { lastLinkError = err.message; });
  client.on('message', (_topic, payload) => {
    const opened = openEnvelope(payload, KINDS.onboardReply, controller);
    if (!opened.ok) {
      o.log.warn('ignoring an onboarding reply that is not the controller\'s', { error: opened.error });
      return;
    }
    if (!checkReply.Check(opened.body)) return;
    for (const r of replies) r(opened.body);
  });
  client.on('connect', () => {
    client.subscribe(topics.onboardReply(prov.serial), { qos: 1 });
  });

  const started = Date.now();
  const policy: BackoffPolicy = { minMs: 1000, maxMs: o.maxBackoffMs ?? 600_000, jitter: 0.2 };
  try {
    for (let attempt = 1; ; attempt++) {
      if (o.signal.aborted) throw new Error('stopped');
      const result = await attemptOnce(client, o, signer, kid, replies, () => lastLinkError);
      if (result.ok) {
        const rec: Onboarded = {
          serial: prov.serial, deviceId: result.reply.deviceId, broker: result.reply.broker, onboardedAt: new Date().toISOString(),
        };
        openSecret(rec.broker.password, o.keys.box.secretKey); // it must open now, not at the first connect
        writeOnboarded(o.dirs, rec);
        o.log.info('onboarded', { serial: prov.serial, deviceId: rec.deviceId, attempts: attempt });
        return rec;
      }
      o.onRefused?.(result.code, result.error);
      const wait = backoffDelay(policy, attempt);
      o.log.warn('onboarding not done; will retry', { serial: prov.serial, attempt, reason: result.error, ...(result.code ? { code: result.code } : {}), retryInMs: wait });
      if (o.deadlineMs !== undefined && Date.now() - started + wait > o.deadlineMs) {
        throw new OnboardingRefused(result.code ?? 'timeout', `onboarding of serial ${prov.serial} failed after ${attempt} attempts: ${result.error}`);
      }
      await sleep(wait, o.signal);
    }
  } finally {
    client.end(true);
  }
}

type Attempt = { ok: true; reply: Extract<OnboardReply, { ok: true }> } | { ok: false; code?: string; error: string };

async function attemptOnce(
  client: MqttClient, o: OnboardOptions, signer: ReturnType<typeof signerFor>, kid: string,
  replies: Array<(r: OnboardReply) => void>, linkError: () => string | undefined,
): Promise<Attempt> {
  const prov = o.provisioning;
  if (!client.connected) {
    await waitConnected(client, o.attemptTimeoutMs ?? 10_000, o.signal);
    if (!client.connected) return { ok: false, error: `cannot reach the broker at ${prov.broker.url}: ${linkError() ?? 'no answer'}` };
  }
  const nonce = randomBytes(16).toString('hex');
  const req: OnboardRequest = {
    serial: prov.serial, token: prov.token, signPublicKey: o.keys.sign.publicKey, boxPublicKey: o.keys.box.publicKey,
    nonce, time: new Date().toISOString(), zedboxVersion: VERSION,
  };
  return new Promise<Attempt>((resolve) => {
    const timer = setTimeout(() => finish({ ok: false, error: `no answer from the controller within ${(o.attemptTimeoutMs ?? 10_000) / 1000} s` }), o.attemptTimeoutMs ?? 10_000);
    const onReply = (r: OnboardReply): void => {
      if (r.nonce !== nonce || r.serial !== prov.serial) return; // an old retained answer, or another request's
      finish(r.ok ? { ok: true, reply: r } : { ok: false, code: r.code, error: `${r.code}: ${r.error}` });
    };
    const finish = (a: Attempt): void => {
      clearTimeout(timer);
      const i = replies.indexOf(onReply);
      if (i >= 0) replies.splice(i, 1);
      resolve(a);
    };
    replies.push(onReply);
    client.publish(topics.onboardRequest(prov.serial), seal(KINDS.onboardRequest, req, signer, kid), { qos: 1 }, (err) => {
      if (err) finish({ ok: false, error: `request not accepted by the broker: ${err.message}` });
    });
  });
}

function waitConnected(client: MqttClient, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => { clearTimeout(t); client.off('connect', done); signal.removeEventListener('abort', done); resolve(); };
    const t = setTimeout(done, ms);
    client.once('connect', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
