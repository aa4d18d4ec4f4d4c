// zedagent with a controller: identity, onboarding (when device-steps has not
// done it yet), the checkpointed config at boot, the MQTT link, the reporter,
// the log batches and the reboot/shutdown counters. Wiring only; each part is its own module.
import * as path from 'node:path';
import { keyId, signerFor, verifierFor } from '../../lib/keys';
import type { ConfigBody } from '../../api/messages';
import { openSecret } from '../../lib/secrets';
import type { Provisioning } from '../../api/provisioning';
import { ensureDeviceKeys, readOnboarded } from '../../lib/device-identity';
import { untilAborted, type AgentContext } from '../agent';
import { VERSION } from '../../lib/version';
import { DeviceNetworkStatusCollection, DevicePortConfigListCollection } from '../../pubsub/collections';
import { startRun, writeStopped } from './boot-reason';
import { ConfigApplier } from './config-applier';
import { ControllerConfigSource } from './controller-config-source';
import { ControllerLink } from './controller-link';
import { decideOps } from './device-ops';
import { onboard } from './onboard-driver';
import { opsCommand, readOpsRecord, runOpsCommand, writeOpsRecord } from './ops-driver';
import { LedState, ledForRefusal } from './led-state';
import { LogForwarder } from './log-forwarder';
import { controllerProxy } from './network-path';
import { Outbox } from './outbox';
import { Reporter, infoPriority } from './reporter';
import { ReportedKeys } from './reported-keys';
import { SeqAllocator } from './seq-allocator';
import { MetricsSampler, readHardware } from './system-driver';

export async function runWithController(ctx: AgentContext, prov: Provisioning): Promise<void> {
  const { keys, created } = ensureDeviceKeys(ctx.dirs);
  if (created) ctx.log.info('made this device\'s key pairs', { signKey: keyId(keys.sign.publicKey) });
  const applier = new ConfigApplier(ctx, `controller:${prov.broker.url}`);
  const led = new LedState(ctx);
  led.set(2, `connecting to the controller's broker at ${prov.broker.url}`);
  let onboarded = readOnboarded(ctx.dirs);
  if (!onboarded) {
    applier.publishDefaults();
    try {
      onboarded = await onboard({
        dirs: ctx.dirs, provisioning: prov, keys, log: ctx.log, signal: ctx.signal,
        onRefused: (code, error) => led.set(ledForRefusal(code), error),
      });
    } catch (err) {
      if (ctx.signal.aborted) return; // stopped while still waiting for the controller
      throw err;
    }
  }
  if (ctx.signal.aborted) return;
  const deviceId = onboarded.deviceId;
  const signer = signerFor(keys.sign);
  const kid = keyId(keys.sign.publicKey);
  const run = startRun(ctx.dirs.persist, { zedboxVersion: VERSION });
  let ops = readOpsRecord(ctx.dirs.persist);
  let stopReason: 'stop' | 'reboot-command' | 'shutdown-command' = 'stop';

  let reporter: Reporter | undefined;
  const onApplied = (body: ConfigBody): void => {
    reporter?.epochSeen(body.epoch);
    const cfg = body.config as { reboot?: { counter: number }; shutdown?: { counter: number } };
    const d = decideOps(ops, cfg);
    if (!d.changed) return;
    ops = d.record;
    writeOpsRecord(ctx.dirs.persist, ops); // before acting: a command that takes the machine down acts once
    if (!d.act) return;
    const op = d.act;
    ctx.log.warn(`the controller asked for a ${op}`, { counter: ops[op] });
    stopReason = op === 'reboot' ? 'reboot-command' : 'shutdown-command';
    writeStopped(ctx.dirs.persist, stopReason);
    void runOpsCommand(op, opsCommand(op)).then((r) => {
      if (r.error) ctx.log.error(`${op} did not happen`, { error: r.error });
      else ctx.log.info(`${op} command ran`, { command: r.command, exitCode: r.exitCode });
    });
  };
  const controllerKey = verifierFor(prov.controllerPublicKey);
  const source = new ControllerConfigSource(ctx, applier, controllerKey, deviceId, onApplied);

  const outbox = new Outbox(path.join(ctx.dirs.persist, 'zedagent', 'outbox'), { maxInflight: 32, flushAfterMs: 200, priority: infoPriority });
  const logs = new LogForwarder(ctx, { deviceId, signer, kid, controller: controllerKey, send: (m) => link.send(m) });
  // nim's view of the ports: the link goes through the proxy of the management port in use, if it has one.
  const ports = ctx.subscribe(DeviceNetworkStatusCollection, {});
  const portList = ctx.subscribe(DevicePortConfigListCollection, {});
  const link = new ControllerLink(
    {
      url: prov.broker.url, ...(prov.broker.caPem ? { caPem: prov.broker.caPem } : {}),
      username: onboarded.broker.username, password: openSecret(onboarded.broker.password, keys.box.secretKey),
    },
    deviceId, signer, kid, ctx.log,
    {
      onConfig: (payload) => {
        const outcome = source.receive(payload);
        if (outcome === 'bad-signature') led.set(15, 'the controller\'s signature on the config is invalid or missing');
        else if (outcome !== 'cleared') led.set(4, 'connected, onboarded, config received');
      },
      onLogAck: (payload) => logs.receiveAck(payload),
      onUp: () => {
        led.set(3, 'connected to the broker, waiting for the config');
        outbox.attach((m) => link.send(m));
        logs.attach(); // after the outbox: device info is on the wire before any log batch
      },
      onDown: (reason) => {
        led.set(2, `connecting to the controller's broker: ${reason}`);
        outbox.detach();
        logs.detach();
      },
    },
    () => controllerProxy(ports.get('global'), portList.get('global')),
  );
  // The checkpointed config first, before anything slow: apps come back even when the broker cannot be reached.
  source.boot();
  try {
    const hardware = await readHardware();
    if (ctx.signal.aborted) return;
    reporter = new Reporter(ctx, {
      deviceId, signer, kid, outbox, seq: SeqAllocator.at(ctx.dirs.persist), applier, hardware,
      sampler: new MetricsSampler(), startedAt: run.record.startedAt, bootReason: run.reason,
      restartCounter: run.record.restartCounter ?? 1, ops: () => ops, reportedKeys: ReportedKeys.at(ctx.dirs.persist),
      sendMetrics: (topic, payload) => link.sendLossy(topic, payload),
    });
    reporter.start();
    link.start();
    ctx.log.info('zedagent running with the controller', { deviceId, broker: prov.broker.url, outboxPending: outbox.pending });
    await untilAborted(ctx.signal);
  } finally {
    outbox.flush();
    await link.stop();
    writeStopped(ctx.dirs.persist, stopReason);
  }
}
