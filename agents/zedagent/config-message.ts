// Deciding what to do with a config message from the controller. Pure: the
// payload, the controller's key and what the device applied last go in; apply,
// ignore (a repeat) or refuse (with the reason as field errors) comes out.
// Nothing in the body is looked at before its signature checks out.
import { createHash } from 'node:crypto';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { openEnvelope } from '../../api/envelope';
import type { Verifier } from '../../lib/keys';
import { ConfigBodySchema, KINDS, type ConfigBody } from '../../api/messages';
import { parseDeviceConfig, type FieldError, type ParsedConfig } from './device-config';

const checkBody = TypeCompiler.Compile(ConfigBodySchema);

export interface AppliedConfig {
  seq: number;
  /** sha256 of the signed body text. */
  bodySha256: string;
}

export type ConfigDecision =
  | { action: 'apply'; body: ConfigBody; parsed: ParsedConfig; bodySha256: string }
  | { action: 'repeat' }
  | { action: 'refuse'; errors: FieldError[]; unknownConfigItems: string[]; bodySha256?: string; what: string };

export function decideConfig(payload: Buffer | string, controller: Verifier, deviceId: string, applied: AppliedConfig | undefined): ConfigDecision {
  const opened = openEnvelope(payload, KINDS.config, controller);
  if (!opened.ok) {
    const what = opened.reason === 'malformed' ? 'unsigned or malformed config' : opened.reason === 'signature' ? 'config with a bad signature' : 'config';
    return { action: 'refuse', what, errors: [{ path: '', message: opened.error }], unknownConfigItems: [] };
  }
  const bodySha256 = createHash('sha256').update(opened.envelope.body).digest('hex');
  const refuse = (path: string, message: string, what = 'config'): ConfigDecision =>
    ({ action: 'refuse', what, errors: [{ path, message }], unknownConfigItems: [], bodySha256 });
  if (!checkBody.Check(opened.body)) {
    const e = checkBody.Errors(opened.body).First();
    return refuse(e?.path ?? '', `signed config body is malformed: ${e?.message ?? 'wrong shape'}`);
  }
  const body = opened.body;
  if (body.deviceId !== deviceId) return refuse('/deviceId', `config is for device ${body.deviceId}, this is ${deviceId}`);
  if (applied && bodySha256 === applied.bodySha256) return { action: 'repeat' };
  if (applied && body.seq <= applied.seq) {
    return refuse('/seq', `config seq ${body.seq} is not newer than the applied seq ${applied.seq} (a replayed or stale config)`, 'replayed config');
  }
  const parsed = parseDeviceConfig(JSON.stringify(body.config));
  if (!parsed.config) {
    return { action: 'refuse', what: 'config', errors: parsed.errors.map((e) => ({ path: `/config${e.path}`, message: e.message })), unknownConfigItems: parsed.unknownConfigItems, bodySha256 };
  }
  if (parsed.config.deviceId !== undefined && parsed.config.deviceId !== deviceId) {
    return refuse('/config/deviceId', `config names device ${parsed.config.deviceId}, this is ${deviceId}`);
  }
  return { action: 'apply', body, parsed, bodySha256 };
}
