// onboard: what device-steps.sh runs before the agents when the device has no
// UUID yet (EVE's `client getUuid`): make the keys if needed, then ask the
// controller until it answers yes, with a bounded backoff. Running it again on
// an onboarded device only prints the UUID.
import { keyId } from '../../lib/keys';
import { dirsFrom, loggerFrom, numberOption, parseCli, UsageError } from '../../lib/cli';
import { ensureDeviceKeys, identityPaths, readOnboarded } from '../../lib/device-identity';
import { readProvisioning } from '../../api/provisioning';
import { onboard, OnboardingRefused } from '../../agents/zedagent/onboard-driver';
import type { ToolSpec } from '../tool';

const HELP = `Usage: onboard [--timeout SECONDS] [--max-backoff SECONDS] [--keys-only]

Makes the device's key pairs on first use (<persist>/certs/device-keys.json, mode 0600), then, unless
the device is onboarded already (<persist>/status/onboarding.json), asks the controller named in
<config>/controller.json to onboard it with its serial and token. Refusals (an unknown serial, a bad
token, a serial already onboarded with other keys) are logged with the controller's reason and retried
with a backoff from 1 s up to --max-backoff (default 600). --timeout gives up (exit 1) after that many
seconds; without it, onboard tries until it succeeds. --keys-only makes the keys and stops.
Prints the device UUID.`;

const OPTIONS = { timeout: { type: 'string' }, 'max-backoff': { type: 'string' }, 'keys-only': { type: 'boolean' } } as const;

export const onboardTool: ToolSpec = {
  name: 'onboard',
  summary: 'make the device keys and onboard with the controller (device-steps.sh runs it)',
  help: HELP,
  async main(args, env) {
    const { values } = parseCli(args, OPTIONS);
    const dirs = dirsFrom(values);
    const log = loggerFrom(values, 'onboard');
    const { keys, created } = ensureDeviceKeys(dirs);
    if (created) log.info('made the device key pairs', { file: identityPaths(dirs).keys, signKey: keyId(keys.sign.publicKey) });
    if (values['keys-only']) return 0;
    const done = readOnboarded(dirs);
    if (done) {
      env.out(`${done.deviceId}\n`);
      return 0;
    }
    const prov = readProvisioning(dirs);
    if (!prov) throw new UsageError(`no provisioning file at ${identityPaths(dirs).provisioning} (write one with \`zedctl device add SERIAL --out FILE\`)`);
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const timeout = numberOption(values, 'timeout');
    const maxBackoff = numberOption(values, 'max-backoff');
    try {
      const rec = await onboard({
        dirs, provisioning: prov, keys, log, signal: abort.signal,
        ...(maxBackoff !== undefined ? { maxBackoffMs: maxBackoff * 1000 } : {}),
        ...(timeout !== undefined ? { deadlineMs: timeout * 1000 } : {}),
      });
      env.out(`${rec.deviceId}\n`);
      return 0;
    } catch (err) {
      if (err instanceof OnboardingRefused) {
        log.error(err.message, { code: err.code });
        return 1;
      }
      if (abort.signal.aborted) return 1;
      throw err;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};
