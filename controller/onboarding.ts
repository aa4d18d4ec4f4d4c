// Whether a device may join, decided from its (already verified) request and the
// registry record alone. Pure: the handler does the I/O. A device proves itself
// with the onboarding token the operator gave it; once onboarded, its signing key
// is its identity, so a device that lost its broker password re-onboards with the
// same keys (and gets the same UUID), while other keys under its serial are refused.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { OnboardRequest, ONBOARD_REFUSALS } from '../api/messages';
import type { BrokerRole } from './acl';

export type OnboardRefusal = (typeof ONBOARD_REFUSALS)[number];

export interface DeviceRecord {
  serial: string;
  /**
   * registered: pre-registered by an operator (add, or allow), may onboard with its token;
   * pending: asked without being registered, waits for `zedctl device allow`;
   * onboarded: has a UUID, keys and a broker account.
   */
  state: 'registered' | 'pending' | 'onboarded';
  /** sha256 (hex) of the onboarding token; absent while pending. */
  tokenSha256?: string;
  deviceId?: string;
  signPublicKey?: string;
  boxPublicKey?: string;
  brokerUsername?: string;
  zedboxVersion?: string;
  createdAt: string;
  onboardedAt?: string;
  lastRequestAt?: string;
  /** The nonce of the last request decided: the same request delivered twice is answered once. */
  lastNonce?: string;
  lastRefusal?: { code: OnboardRefusal; error: string; time: string };
}

export type OnboardOutcome = { ok: true; deviceId: string } | { ok: false; code: OnboardRefusal; error: string };

export interface OnboardDecision {
  reply: OnboardOutcome;
  /** The record to store (always: it carries the time of the request and any refusal). */
  record: DeviceRecord;
  /** The broker account to create or refresh (with a fresh password) before replying. */
  provision?: { username: string; role: BrokerRole };
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export function decideOnboarding(req: OnboardRequest, record: DeviceRecord | undefined, now: string, newId: () => string): OnboardDecision {
  const refuse = (rec: DeviceRecord, code: OnboardRefusal, error: string): OnboardDecision => ({
    reply: { ok: false, code, error },
    record: { ...rec, lastRequestAt: now, lastNonce: req.nonce, lastRefusal: { code, error, time: now } },
  });

  if (!record) {
    const pending: DeviceRecord = { serial: req.serial, state: 'pending', createdAt: now };
    return refuse(pending, 'not-registered', `serial ${req.serial} is not registered; it is now pending: an operator may \`zedctl device allow ${req.serial}\``);
  }
  if (record.state === 'pending') {
    return refuse(record, 'pending', `serial ${req.serial} waits for an operator to allow it`);
  }
  if (record.state === 'onboarded') {
    if (record.signPublicKey !== req.signPublicKey || record.boxPublicKey !== req.boxPublicKey) {
      return refuse(record, 'conflict', `serial ${req.serial} is already onboarded with other keys`);
    }
    // The same device again (it proved it holds the registered signing key): same UUID, new password.
    return grant({ ...record, zedboxVersion: req.zedboxVersion ?? record.zedboxVersion }, req, now);
  }
  if (!record.tokenSha256 || !sameHash(record.tokenSha256, tokenHash(req.token))) {
    return refuse(record, 'bad-token', `wrong onboarding token for serial ${req.serial}`);
  }
  const deviceId = newId();
  return grant(
    {
      ...record,
      state: 'onboarded',
      deviceId,
      signPublicKey: req.signPublicKey,
      boxPublicKey: req.boxPublicKey,
      brokerUsername: deviceId,
      onboardedAt: now,
      ...(req.zedboxVersion !== undefined ? { zedboxVersion: req.zedboxVersion } : {}),
    },
    req,
    now,
  );
}

function grant(rec: DeviceRecord, req: OnboardRequest, now: string): OnboardDecision {
  const deviceId = rec.deviceId as string;
  const { lastRefusal: _dropped, ...rest } = rec;
  return {
    reply: { ok: true, deviceId },
    record: { ...rest, lastRequestAt: now, lastNonce: req.nonce },
    provision: { username: rec.brokerUsername ?? deviceId, role: { kind: 'device', deviceId } },
  };
}
