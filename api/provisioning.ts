// The provisioning file: what `zedctl device add` writes for a device and the
// device reads at boot (<config>/controller.json): where the controller's broker
// is, how to ask to join, and the key that signs everything the controller sends.
import { Type, type Static } from '@sinclair/typebox';
import { SERIAL_PATTERN } from './topics';
import { Key32B64 } from '../lib/keys';
import { identityPaths, readJson } from '../lib/device-identity';
import type { Dirs } from '../lib/dirs';

const strict = { additionalProperties: false } as const;

export const ProvisioningSchema = Type.Object(
  {
    broker: Type.Object({ url: Type.String({ pattern: '^mqtts?://' }), caPem: Type.Optional(Type.String()) }, strict),
    onboarding: Type.Object({ username: Type.String({ minLength: 1 }), password: Type.String({ minLength: 1 }) }, strict),
    serial: Type.String({ pattern: SERIAL_PATTERN }),
    token: Type.String({ minLength: 8 }),
    /** base64 ed25519 key that signs every config and onboarding reply. */
    controllerPublicKey: Key32B64,
  },
  strict,
);
export type Provisioning = Static<typeof ProvisioningSchema>;

/** undefined when there is none (a device without a controller); throws when it is unreadable or malformed. */
export function readProvisioning(dirs: Dirs, file = identityPaths(dirs).provisioning): Provisioning | undefined {
  return readJson<Provisioning>(file, ProvisioningSchema, 'provisioning file');
}
