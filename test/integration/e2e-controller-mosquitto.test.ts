// End to end through a real Mosquitto (TLS, dynamic security): two zedctl
// replicas share one state dir and the device traffic; the controller creates
// every account and role through dynsec; each device can touch only its own
// topics; a broker outage loses nothing the device reported meanwhile.
import * as fs from 'node:fs';
import * as path from 'node:path';
import mqtt from 'mqtt';
import t from 'tap';
import { seal } from '../../api/envelope';
import { keyId, signerFor } from '../../lib/keys';
import { KINDS } from '../../api/messages';
import { openSecret } from '../../lib/secrets';
import { topics } from '../../api/topics';
import { readDeviceKeys, readOnboarded } from '../../lib/device-identity';
import { Controller } from '../lib/controller';
import { Device } from '../lib/device';
import { startMosquitto } from '../lib/mosquitto';

t.test('Mosquitto with dynsec: onboarding, isolation between devices, two replicas, an outage', async (t) => {
  const broker = await startMosquitto({ name: 'e2e-ctl' });
  t.teardown(() => broker.cleanup());
  const r1 = new Controller({ broker: { url: broker.url, caFile: broker.caFile, dynsecAdmin: broker.admin }, replica: 'r1' });
  t.teardown(() => r1.cleanup());
  await r1.start();
  const r2 = new Controller({ broker: { url: broker.url, caFile: broker.caFile }, stateDir: r1.stateDir, replica: 'r2' });
  t.teardown(() => r2.stop());
  await r2.start();

  const devices: Record<'a' | 'b', Device> = { a: new Device(), b: new Device() };
  for (const [name, device] of Object.entries(devices)) {
    t.teardown(() => device.cleanup());
    const prov = await r1.addDevice(`mq-${name}`);
    t.match(prov.broker.url, /^mqtts:/, 'devices reach the broker over TLS');
    fs.writeFileSync(path.join(device.dirs.config, 'controller.json'), JSON.stringify(prov), { mode: 0o600 });
    await device.start();
  }
  const a = await r1.waitFor('mq-a', (v) => v.status?.state === 'online' && !!v.device, 'device a onboarded and reporting');
  const b = await r1.waitFor('mq-b', (v) => v.status?.state === 'online' && !!v.device, 'device b onboarded and reporting');
  const uuidA = a.record.deviceId!;
  const uuidB = b.record.deviceId!;
  for (const [ref, version] of [['mq-a', 'a1'], ['mq-b', 'b1']] as const) {
    await r2.setConfig(ref, { version, apps: [] }); // either replica can send config: they share the state
  }
  await r1.waitFor('mq-a', (v) => v.config?.appliedVersion === 'a1', 'a applied its config');
  await r1.waitFor('mq-b', (v) => v.config?.appliedVersion === 'b1', 'b applied its config');

  await t.test('device a, with its own broker account, can neither read b\'s config nor write b\'s info', async (t) => {
    const rec = readOnboarded(devices.a.dirs)!;
    const keys = readDeviceKeys(devices.a.dirs)!;
    const probe = await mqtt.connectAsync(broker.url, {
      protocolVersion: 4, ca: broker.caPem, clientId: 'probe-as-a', username: rec.broker.username,
      password: openSecret(rec.broker.password, keys.box.secretKey),
    });
    t.teardown(() => probe.endAsync());
    const got: string[] = [];
    probe.on('message', (topic) => got.push(topic));
    await probe.subscribeAsync(topics.config(uuidA), { qos: 1 });
    await probe.subscribeAsync(topics.config(uuidB), { qos: 1 }).catch(() => undefined);
    await probe.subscribeAsync('zedbox/v1/#', { qos: 1 }).catch(() => undefined);
    const bInfoFile = path.join(r1.stateDir, 'info', uuidB, 'device', 'global.json');
    const before = fs.readFileSync(bInfoFile, 'utf8');
    // Signed with a's key as b's info, on b's topic: the broker must drop it before anyone sees it.
    const fake = seal(KINDS.info, { deviceId: uuidB, kind: 'device', id: 'global', seq: 1e12, time: new Date().toISOString(), value: {} }, signerFor(keys.sign), keyId(keys.sign.publicKey));
    await probe.publishAsync(topics.info(uuidB, 'device', 'global'), fake, { qos: 1 });
    await probe.publishAsync(topics.config(uuidB), 'overwritten', { qos: 1, retain: true });
    await new Promise((r) => setTimeout(r, 2000));
    t.same([...new Set(got)], [topics.config(uuidA)], 'a receives its own config and nothing of b\'s');
    t.equal(fs.readFileSync(bInfoFile, 'utf8'), before, 'b\'s info at the controller is untouched');
    const bNow = await r1.show('mq-b');
    t.equal(bNow.config?.appliedVersion, 'b1', 'b\'s config was not overwritten');
    t.notOk(bNow.config?.error, 'and b saw nothing to refuse');
  });

  await t.test('both replicas take part in the ingest', async (t) => {
    const events = fs.readFileSync(path.join(r1.stateDir, 'events', `${uuidA}.ndjson`), 'utf8')
      .split('\n').filter(Boolean).map((l) => JSON.parse(l) as { replica?: string });
    const byReplica = new Set(events.map((e) => e.replica));
    t.ok(byReplica.has('r1') && byReplica.has('r2'), `events were stored by both replicas (${[...byReplica].join(', ')}), ${events.length} in all`);
  });

  await t.test('broker stopped: the device keeps running; what it reported meanwhile arrives after', async (t) => {
    const before = await r1.show('mq-a');
    await broker.stop();
    await devices.a.restart(); // an info change during the outage: a new start, counted in device info
    await new Promise((r) => setTimeout(r, 1500));
    await broker.start();
    const after = await r1.waitFor('mq-a', (v) => v.device?.restartCounter === (before.device?.restartCounter ?? 0) + 1 && v.status?.state === 'online',
      'the restart made during the outage reaches the controller', 60_000).catch((err: Error) => {
      const tail = (xs: string[]) => xs.filter((l) => !l.includes('"level":"debug"')).slice(-15).join('\n');
      t.comment(`-- device:\n${tail(devices.a.logs())}\n-- r1:\n${tail(r1.lines)}\n-- r2:\n${tail(r2.lines)}`);
      throw err;
    });
    t.equal(after.config?.appliedVersion, 'a1', 'the config stayed applied');
    t.equal(after.record.deviceId, uuidA, 'same device');
  });
});
