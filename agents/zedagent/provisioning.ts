// Reading the provisioning file (api/provisioning.ts) a device was given.
import { ProvisioningSchema, type Provisioning } from '../../api/provisioning';
import { identityPaths, readJson } from '../../lib/device-identity';
import type { Dirs } from '../../lib/dirs';

/** undefined when there is none (a device without a controller); throws when it is unreadable or malformed. */
export function readProvisioning(dirs: Dirs, file = identityPaths(dirs).provisioning): Provisioning | undefined {
  return readJson<Provisioning>(file, ProvisioningSchema, 'provisioning file');
}
