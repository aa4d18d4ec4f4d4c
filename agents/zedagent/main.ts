// zedagent: the device config in, as collections out. Today from a local file
// (issue 3); the controller link over MQTT arrives with issue 4.
// Wiring only: parsing is device-config.ts and config-rules.ts, the diff
// publish-plan.ts, the effects config-file-driver.ts and publish-driver.ts.
import { untilAborted, type AgentSpec } from '../agent';
import { LocalConfigSource } from './publish-driver';

export const zedagent: AgentSpec = {
  name: 'zedagent',
  summary: 'the device config in (a local file today; the controller over MQTT with issue 4), as collections out',
  help: `Reads the device config from --config FILE (default <config dir>/device-config.json), checks all of
it, and publishes DatastoreConfig, ContentTreeConfig, VolumeConfig, AppInstanceConfig,
NetworkInstanceConfig, ConfigItemValueMap and PublisherKeys. It reloads the file when it changes. A
config with any error is refused whole: what was applied stays, and DeviceConfigStatus lists every bad
field by path. The last accepted config is kept in <persist>/checkpoint/device-config.json and applied
at start when the file is missing or refused. docs/device-config.md describes every field.

Not yet: the controller link (onboarding, signed config over MQTT, info and metrics; issue 4).`,
  async run(ctx) {
    const source = new LocalConfigSource(ctx);
    source.start();
    try {
      await untilAborted(ctx.signal);
    } finally {
      source.stop();
    }
  },
};
