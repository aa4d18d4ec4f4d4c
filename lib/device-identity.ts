// The device's identity on disk: its key pairs (made once, on first boot) and
// what onboarding returned (its UUID and broker account, with the password
// still sealed); where its provisioning file is (its format is api/provisioning.ts). Private material is mode 0600 in a 0700 directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Key32B64, newBoxKeyPair, newSignKeyPair, type BoxKeyPair, type SignKeyPair } from './keys';
import { MaybeSealedString, SealedSchema, openSecret } from './secrets';
import { writeFileAtomicSync, writeJsonAtomicSync } from './atomic-file';
import type { Dirs } from './dirs';

const strict = { additionalProperties: false } as const;

export const DeviceKeysSchema = Type.Object(
  {
    sign: Type.Object({ publicKey: Key32B64, seed: Key32B64 }, strict),
    box: Type.Object({ publicKey: Key32B64, secretKey: Key32B64 }, strict),
    createdAt: Type.String(),
  },
  strict,
);
export interface DeviceKeys { sign: SignKeyPair; box: BoxKeyPair; createdAt: string }


export const OnboardedSchema = Type.Object(
  {
    serial: Type.String(),
    deviceId: Type.String(),
    broker: Type.Object({ username: Type.String(), password: SealedSchema }, strict),
    onboardedAt: Type.String(),
  },
  strict,
);
export type Onboarded = Static<typeof OnboardedSchema>;

export const identityPaths = (dirs: Dirs) => ({
  keys: path.join(dirs.persist, 'certs', 'device-keys.json'),
  onboarded: path.join(dirs.persist, 'status', 'onboarding.json'),
  uuid: path.join(dirs.persist, 'status', 'uuid'),
  provisioning: path.join(dirs.config, 'controller.json'),
});

export class IdentityError extends Error {
  override name = 'IdentityError';
}

export function readJson<T>(file: string, schema: Parameters<typeof Value.Check>[0], what: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IdentityError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new IdentityError(`${what} ${file} is not JSON: ${(err as Error).message}`);
  }
  if (!Value.Check(schema, value)) {
    const e = Value.Errors(schema, value).First();
    throw new IdentityError(`${what} ${file} is malformed: ${e ? `${e.path || '/'} ${e.message}` : 'wrong shape'}`);
  }
  return value as T;
}

export function readDeviceKeys(dirs: Dirs): DeviceKeys | undefined {
  return readJson<DeviceKeys>(identityPaths(dirs).keys, DeviceKeysSchema, 'device keys');
}

/** The device's keys, made the first time (a device keeps its identity for life). */
export function ensureDeviceKeys(dirs: Dirs): { keys: DeviceKeys; created: boolean } {
  const existing = readDeviceKeys(dirs);
  if (existing) return { keys: existing, created: false };
  const keys: DeviceKeys = { sign: newSignKeyPair(), box: newBoxKeyPair(), createdAt: new Date().toISOString() };
  writeJsonAtomicSync(identityPaths(dirs).keys, keys);
  return { keys, created: true };
}


export function readOnboarded(dirs: Dirs): Onboarded | undefined {
  return readJson<Onboarded>(identityPaths(dirs).onboarded, OnboardedSchema, 'onboarding record');
}

export function writeOnboarded(dirs: Dirs, rec: Onboarded): void {
  writeJsonAtomicSync(identityPaths(dirs).onboarded, rec);
  writeFileAtomicSync(identityPaths(dirs).uuid, rec.deviceId + '\n');
}

/**
 * Opens secrets sealed to this device, reading the box key when first needed.
 * Callers hold the clear text only as long as the call that uses it.
 */
export function secretOpener(dirs: Dirs): (value: MaybeSealedString) => string {
  let secretKey: string | undefined;
  return (value) => {
    if (typeof value === 'string') return value;
    secretKey ??= readDeviceKeys(dirs)?.box.secretKey;
    if (!secretKey) throw new IdentityError('a sealed secret arrived but this device has no keys (certs/device-keys.json)');
    return openSecret(value, secretKey);
  };
}
