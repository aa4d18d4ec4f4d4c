// An operator's device-config file → the signed config message for one device.
// The file is checked with the device's own parser first (a config the device
// would refuse is never signed), then its secrets are sealed to that device:
// every datastore password written in clear, and every app env value written as
// {"secret": "text"}. Pure apart from the clock the caller passes in.
import { createHash } from 'node:crypto';
import { seal } from '../api/envelope';
import { keyId, signerFor } from '../lib/keys';
import { KINDS, type ConfigBody } from '../api/messages';
import { isSealed, sealSecret } from '../lib/secrets';
import { parseDeviceConfig, type FieldError } from '../agents/zedagent/device-config';
import type { ControllerKeys } from './state-dir';

export interface SignTarget {
  deviceId: string;
  boxPublicKey: string;
}

export interface SignInput {
  /** The operator's file, as text. */
  text: string;
  device: SignTarget;
  /** The seq of the last config sent to this device (0: none yet). */
  previousSeq: number;
  epoch: number;
  keys: ControllerKeys;
  now: Date;
}

export type SignResult =
  | { ok: true; body: ConfigBody; envelope: Buffer; sourceSha256: string; sealedCount: number }
  | { ok: false; errors: FieldError[]; sourceSha256: string };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** The operator's marker for a secret: an object with exactly one key, "secret". */
function secretMarker(v: Json | undefined): { text: Json } | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0] === 'secret' ? { text: v.secret! } : undefined;
}

interface SecretSlot {
  path: string;
  get(): Json | undefined;
  set(v: Json): void;
}

/** Where secrets may be: datastores[].password and apps[].env.* (docs/device-config.md). */
function secretSlots(config: Obj): SecretSlot[] {
  const slots: SecretSlot[] = [];
  const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
  const slot = (owner: Obj, key: string, path: string): SecretSlot => ({ path, get: () => owner[key], set: (v) => { owner[key] = v; } });
  const list = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
  list(config.datastores).forEach((ds, i) => {
    if (isObj(ds) && ds.password !== undefined) slots.push(slot(ds, 'password', `/datastores/${i}/password`));
  });
  list(config.apps).forEach((app, i) => {
    const env = isObj(app) ? app.env : undefined;
    if (!isObj(env)) return;
    for (const name of Object.keys(env)) slots.push(slot(env, name, `/apps/${i}/env/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`));
  });
  return slots;
}

/**
 * A copy for checking: markers become their text and sealed values a placeholder, so the
 * schema sees plain strings wherever a secret may stand. This copy never leaves memory.
 */
function plainCopy(config: Obj): { plain: Obj; errors: FieldError[] } {
  const plain = structuredClone(config);
  const errors: FieldError[] = [];
  for (const s of secretSlots(plain)) {
    const v = s.get();
    const marker = secretMarker(v);
    if (marker) {
      if (typeof marker.text !== 'string') errors.push({ path: `${s.path}/secret`, message: 'Expected the secret as a string' });
      else s.set(marker.text);
    } else if (isSealed(v)) s.set('(sealed)');
  }
  return { plain, errors };
}

/** The config as sent: every secret sealed to the device. Returns how many were sealed here. */
function sealedCopy(config: Obj, device: SignTarget, seed: Uint8Array): { sealed: Obj; count: number } {
  const sealed = structuredClone(config);
  let count = 0;
  for (const s of secretSlots(sealed)) {
    const v = s.get();
    const marker = secretMarker(v);
    const isPassword = s.path.endsWith('/password');
    const text = marker ? marker.text : isPassword && typeof v === 'string' ? v : undefined;
    if (typeof text !== 'string') continue;
    s.set(sealSecret(text, device.boxPublicKey, seed) as unknown as Json);
    count++;
  }
  return { sealed, count };
}

export function signConfig(input: SignInput): SignResult {
  const { text, device } = input;
  const sourceSha256 = createHash('sha256').update(text).digest('hex');
  let raw: Json;
  try {
    raw = JSON.parse(text) as Json;
  } catch {
    // The device's parser says where (line and column).
    return { ok: false, errors: parseDeviceConfig(text).errors, sourceSha256 };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, errors: [{ path: '', message: 'Expected the config to be a JSON object' }], sourceSha256 };
  }
  if (raw.deviceId !== undefined && raw.deviceId !== device.deviceId) {
    return { ok: false, errors: [{ path: '/deviceId', message: `the file is for device ${JSON.stringify(raw.deviceId)}, not ${device.deviceId}` }], sourceSha256 };
  }
  const config: Obj = { ...raw, deviceId: device.deviceId };

  const { plain, errors: markerErrors } = plainCopy(config);
  const checked = parseDeviceConfig(JSON.stringify(plain));
  const errors = [...markerErrors, ...checked.errors];
  if (errors.length) return { ok: false, errors, sourceSha256 };

  const { sealed, count } = sealedCopy(config, device, input.keys.sealingSeed);
  // The device checks the sealed form: if its schema does not take a sealed value somewhere, say so now.
  const asSent = parseDeviceConfig(JSON.stringify(sealed));
  if (asSent.errors.length) {
    return { ok: false, errors: asSent.errors.map((e) => ({ path: e.path, message: `the device would refuse the sealed config: ${e.message}` })), sourceSha256 };
  }

  const body: ConfigBody = {
    deviceId: device.deviceId,
    seq: input.previousSeq + 1,
    epoch: input.epoch,
    issuedAt: input.now.toISOString(),
    config: sealed,
  };
  return { ok: true, body, envelope: signBody(body, input.keys), sourceSha256, sealedCount: count };
}

export function signBody(body: ConfigBody, keys: ControllerKeys): Buffer {
  return seal(KINDS.config, body, signerFor(keys.sign), keyId(keys.sign.publicKey));
}

/** The same config again with a new seq and epoch (epoch bump): secrets are already sealed. */
export function resignConfig(previous: ConfigBody, epoch: number, keys: ControllerKeys, now: Date): { body: ConfigBody; envelope: Buffer } {
  const body: ConfigBody = { ...previous, seq: previous.seq + 1, epoch, issuedAt: now.toISOString() };
  return { body, envelope: signBody(body, keys) };
}
