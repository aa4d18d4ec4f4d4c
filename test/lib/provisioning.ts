// A well-formed provisioning file (api/provisioning.ts) for tests that need a device
// to know its broker, and nothing else: the onboarding account and the controller's
// key are placeholders no controller will accept.
import type { Provisioning } from '../../api/provisioning';

export function testProvisioning(brokerUrl: string, serial = 'test-1'): Provisioning {
  return {
    broker: { url: brokerUrl },
    onboarding: { username: 'onboard', password: 'onboard-password' },
    serial,
    token: 'token-0123456789',
    controllerPublicKey: Buffer.alloc(32, 7).toString('base64'),
  };
}
