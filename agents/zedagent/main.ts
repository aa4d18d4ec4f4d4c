// zedagent: the device config in, as collections out, and the device's state
// back to the controller. With a provisioning file (<config>/controller.json,
// written by `zedctl device add`) it works with the controller over MQTT;
// without one it reads a local config file, for a device on its own.
import { readProvisioning } from '../../api/provisioning';
import { untilAborted, type AgentSpec } from '../agent';
import { ConfigApplier } from './config-applier';
import { runWithController } from './controller-mode';
import { LedState } from './led-state';
import { LocalConfigSource } from './local-config-source';

export const zedagent: AgentSpec = {
  name: 'zedagent',
  summary: 'the link to the controller (MQTT): onboarding, signed config in, info, metrics and logs out; or a local config file',
  help: `With <config dir>/controller.json (the provisioning file \`zedctl device add\` writes), zedagent works
with the controller over MQTT (docs/controller-api.md): it onboards if <persist>/status/onboarding.json
is missing, applies the signed config the controller keeps for the device (refusing unsigned, forged and
older ones), reports every object's state as signed retained info (queued on disk while the broker is
away) and metrics every timer.metric.interval, sends logmanager's log batches (LogBatch) until the
controller acknowledges each (then it publishes LogBatchAck), and keeps the last accepted config in
<persist>/checkpoint/controller-config.json to boot from when the broker cannot be reached.

Without a provisioning file it reads the device config from --config FILE (default <config
dir>/device-config.json) and reloads it when it changes; the last accepted one is kept in
<persist>/checkpoint/device-config.json. Either way it publishes DatastoreConfig, ContentTreeConfig,
VolumeConfig, AppInstanceConfig, NetworkInstanceConfig, ConfigItemValueMap and PublisherKeys; a config
with any error is refused whole, and DeviceConfigStatus names every bad field. docs/device-config.md
describes every field.

Environment: ZEDBOX_REBOOT_COMMAND and ZEDBOX_SHUTDOWN_COMMAND are run when the config's reboot or
shutdown counter changes.`,
  async run(ctx) {
    const prov = readProvisioning(ctx.dirs);
    if (prov) return runWithController(ctx, prov);
    // No controller: the device runs on its own; the LED says it is in operation.
    new LedState(ctx).set(4, `running the local config file ${ctx.settings.configFile} (no controller)`);
    const source = new LocalConfigSource(ctx, new ConfigApplier(ctx, `file:${ctx.settings.configFile}`));
    source.start();
    try {
      await untilAborted(ctx.signal);
    } finally {
      source.stop();
    }
  },
};
