// End to end with the reference controller and its embedded broker: the built
// bundle runs `zedctl serve` and a device (`zedbox` with a provisioning file);
// everything the test does is what an operator does with zedctl, or what an
// attacker could do on the broker. Docker and the registry are real.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import mqtt from 'mqtt';
import t from 'tap';
import { topics } from '../../api/topics';
import { seal } from '../../api/envelope';
import { keyId, newSignKeyPair, signerFor } from '../../lib/keys';
import { KINDS } from '../../api/messages';
import type { AppInfo } from '../../api/info';
import { readDeviceKeys, readOnboarded } from '../../lib/device-identity';
import { openSecret } from '../../lib/secrets';
import { ConfigBuilder, freePorts, httpGet } from '../lib/config-builder';
import { Controller, type ShownDevice } from '../lib/controller';
import { Device } from '../lib/device';
import { makeImage, removeImage } from '../lib/images';
import { ensureServices } from '../lib/services';
import { waitUntil } from '../lib/wait';
import { dockerClient, LABEL_APP, LABEL_INSTANCE } from '../../lib/docker';

const services = ensureServices();
const docker = dockerClient({ dockerSocket: services.dockerSocket });
const SECRET = `s3cret-${Math.random().toString(36).slice(2)}`;

function appOf(v: ShownDevice, id: string): AppInfo | undefined {
  return v.apps.find((a) => a.id === id);
}

/** Every file under dir whose bytes contain text. */
function filesContaining(dir: string, text: string): string[] {
  const hits: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && fs.readFileSync(p).includes(text)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

t.test('onboard, deploy, refuse forgeries, survive a broker outage and a restart while offline', async (t) => {
  const image = await makeImage({ repo: 'e2e/ctl' });
  t.teardown(() => removeImage(image));
  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'zctl-in-'));
  t.teardown(() => fs.rmSync(inputs, { recursive: true, force: true }));
  const ctl = new Controller();
  t.teardown(() => ctl.cleanup());
  await ctl.start();
  const [port] = await freePorts(1) as [number];
  const rebootMarker = path.join(inputs, 'rebooted');

  const prov = await ctl.addDevice('serial-e2e-1');
  const device = new Device({ env: { ZEDBOX_REBOOT_COMMAND: `echo x >> ${rebootMarker}` } });
  t.teardown(() => device.cleanup());
  fs.writeFileSync(path.join(device.dirs.config, 'controller.json'), JSON.stringify(prov), { mode: 0o600 });
  await device.start();

  const onboarded = await ctl.waitFor('serial-e2e-1', (v) => v.record.state === 'onboarded' && v.status?.state === 'online' && !!v.device, 'device onboarded and online');
  const uuid = onboarded.record.deviceId!;
  t.match(uuid, /^[0-9a-f-]{36}$/, 'the controller assigned a UUID');
  t.equal(fs.readFileSync(path.join(device.dirs.persist, 'status', 'uuid'), 'utf8').trim(), uuid, 'the device keeps it');
  t.equal(onboarded.device?.bootReason, 'first-boot', 'device info says why it started');
  const keysFile = path.join(device.dirs.persist, 'certs', 'device-keys.json');
  t.equal(fs.statSync(keysFile).mode & 0o777, 0o600, 'its private keys are mode 0600');

  const cfg = new ConfigBuilder(`http://${services.registry}`).set('web', {
    image: image.repoTag, port, command: ['sh', '-c', 'mkdir -p /www && echo "$TOKEN" > /www/index.html && exec httpd -f -p 8080 -h /www'],
  });
  const web = cfg.appId('web');
  const withSecret = (c: ReturnType<ConfigBuilder['build']>): unknown => ({
    ...c, apps: c.apps?.map((a) => ({ ...a, env: { TOKEN: { secret: SECRET } } })),
  });
  const write = (name: string, c: unknown): string => {
    const f = path.join(inputs, name);
    fs.writeFileSync(f, JSON.stringify(c));
    return f;
  };

  await t.test('a config deployed through the broker runs its app, with its secret opened only in the container', async (t) => {
    await ctl.zedctl(['config', 'set', 'serial-e2e-1', write('c1.json', withSecret(cfg.build({ reboot: { counter: 1 } })))]);
    const v = await ctl.waitFor('serial-e2e-1', (v) => appOf(v, web)?.state === 'RUNNING', 'web RUNNING as the controller sees it', 120_000);
    t.equal(v.config?.appliedSeq, 1, 'config seq 1 applied');
    t.equal((await httpGet(port)).body, `${SECRET}\n`, 'the app got the secret in its environment');
    t.same(filesContaining(device.dirs.persist, SECRET), [], 'the secret is nowhere in the device\'s persistent files (checkpoint, outbox, status)');
    t.notOk(device.logs().some((l) => l.includes(SECRET)), 'nor in its logs');
    t.same(filesContaining(ctl.stateDir, SECRET), [], 'nor in the controller\'s state (the config it keeps is sealed)');
    t.notOk(fs.existsSync(rebootMarker), 'the first reboot counter is only a baseline');
    const codes = device.logRecords().filter((r) => r.source === 'ledmanager' && /^LED code/.test(String(r.msg))).map((r) => String(r.msg));
    t.same(codes.slice(-1), ['LED code 4: connected and onboarded'], `the LED says so (codes so far: ${codes.map((c) => c.split(':')[0]!.slice(9)).join(', ')})`);
  });

  const first = JSON.parse(fs.readFileSync(path.join(ctl.stateDir, 'configs', `${uuid}.json`), 'utf8')).envelope as string;

  await t.test('a changed config is applied; the reboot counter acts once', async (t) => {
    await ctl.zedctl(['config', 'set', 'serial-e2e-1', write('c2.json', withSecret(cfg.build({ reboot: { counter: 2 } })))]);
    const v = await ctl.waitFor('serial-e2e-1', (v) => v.config?.appliedSeq === 2 && v.device?.rebootCounter === 2, 'seq 2 applied, reboot counter 2 reported');
    t.equal(v.config?.appliedVersion, '2');
    await waitUntil(() => fs.existsSync(rebootMarker), 'the reboot command ran');
    t.equal(fs.readFileSync(rebootMarker, 'utf8'), 'x\n', 'exactly once');
  });

  await t.test('forged, unsigned and replayed configs are refused and the app runs on', async (t) => {
    const server = JSON.parse(fs.readFileSync(path.join(ctl.stateDir, 'server.json'), 'utf8'));
    const attacker = await mqtt.connectAsync(server.url, { protocolVersion: 4, username: server.controller.username, password: server.controller.password, clientId: 'e2e-attacker' });
    t.teardown(() => attacker.endAsync());
    const forger = newSignKeyPair();
    const forged = seal(KINDS.config, { deviceId: uuid, seq: 99, epoch: 0, issuedAt: new Date().toISOString(), config: { version: 'evil' } }, signerFor(forger), keyId(forger.publicKey));
    const cases: Array<[string, Buffer | string, RegExp]> = [
      ['forged', forged, /bad signature/],
      ['unsigned', JSON.stringify({ version: 'plain', apps: [] }), /unsigned or malformed config refused \(1 error\): not a signed envelope/],
      ['replayed seq 1', first, /replayed config refused \(1 error\): \/seq: config seq 1 is not newer than the applied seq 2/],
    ];
    for (const [name, payload, error] of cases) {
      await attacker.publishAsync(topics.config(uuid), payload, { qos: 1, retain: true });
      const v = await ctl.waitFor('serial-e2e-1', (v) => error.test(v.config?.error?.error ?? ''), `${name} config refused`);
      t.equal(v.config?.appliedSeq, 2, `${name}: seq 2 stays applied`);
      t.match(v.device?.config.lastResult, 'refused', `${name}: device info says the last config was refused`);
      t.equal((await httpGet(port)).body, `${SECRET}\n`, `${name}: the app still serves`);
    }
    const ledCodes = (): string[] => device.logRecords().filter((r) => r.source === 'ledmanager').map((r) => String(r.msg));
    t.ok(ledCodes().includes('LED code 15: the controller\'s signature is invalid or missing'), 'the forged config turned the LED to code 15');
    // The operator sends a good config again: it wins over whatever sits on the topic.
    await ctl.zedctl(['config', 'set', 'serial-e2e-1', write('c3.json', withSecret(cfg.build({ reboot: { counter: 2 } })))]);
    await ctl.waitFor('serial-e2e-1', (v) => v.config?.appliedSeq === 3 && !v.config?.error, 'seq 3 applied, refusal cleared');
    await waitUntil(() => ledCodes().slice(-1)[0] === 'LED code 4: connected and onboarded', 'the LED back to code 4', 10_000);
  });

  await t.test('broker down: apps run; a restart while offline boots from the checkpoint; all info arrives after', async (t) => {
    const before = await ctl.show('serial-e2e-1');
    await ctl.stop();
    const containerBefore = (await httpGet(port)).body;
    t.equal(containerBefore, `${SECRET}\n`, 'the app serves with the controller gone');
    // zedbox restarted while the broker is down; and, as if a crash had lost it before the broker had it,
    // the tombstone of an app the device once reported (its key stays in the device's reported set).
    await device.stop();
    const keysFile = path.join(device.dirs.persist, 'status', 'zedagent', 'reported-keys.json');
    const ghost = randomUUID();
    fs.writeFileSync(keysFile, JSON.stringify([...JSON.parse(fs.readFileSync(keysFile, 'utf8')) as string[], `app/${ghost}`]));
    await device.start();
    await waitUntil(async () => (await httpGet(port).catch(() => ({ body: '' }))).body === `${SECRET}\n`, 'the app answers after the offline restart', 60_000);
    await waitUntil(() => device.logRecords().some((r) => r.msg === 'device config applied' && r.fromCheckpoint === true), 'the config applied from the checkpoint', 30_000);
    t.pass('the restarted device applied its checkpointed config without the controller');
    // A second change while still offline: the app's container dies and domainmgr starts it again.
    const [c] = await docker.listContainers({ filters: { label: [`${LABEL_APP}=${web}`, `${LABEL_INSTANCE}=${device.instance}`] } });
    await docker.getContainer(c!.Id).kill();
    await waitUntil(async () => (await httpGet(port).catch(() => ({ body: '' }))).body === `${SECRET}\n`, 'the app answers again after its container was killed', 60_000);
    await ctl.start(); // same state dir and port: the broker is back
    const after = await ctl.waitFor('serial-e2e-1', (v) => v.device?.restartCounter === (before.device?.restartCounter ?? 0) + 1 && v.status?.state === 'online',
      'the restart made while offline is reported');
    t.equal(after.device?.bootReason, 'zedbox-restart', 'with its reason');
    await waitUntil(() => {
      const f = path.join(ctl.stateDir, 'info', uuid, 'app', `${ghost}.json`);
      return fs.existsSync(f) && JSON.parse(fs.readFileSync(f, 'utf8')).body.deleted === true;
    }, 'the app the device no longer has is reported deleted', 30_000);
    t.notOk(after.apps.some((a) => a.id === ghost), 'and is not among the device\'s apps');
    const restarted = await ctl.waitFor('serial-e2e-1', (v) => (appOf(v, web)?.containerRestarts ?? 0) >= 1, 'the container restart made while offline is reported too', 30_000);
    t.equal(appOf(restarted, web)?.containerRestarts, 1, 'the container restart made while offline is reported too');
    t.equal(after.record.deviceId, uuid, 'a second boot keeps its UUID');
    t.equal(appOf(after, web)?.state, 'RUNNING');
    await ctl.waitFor('serial-e2e-1', (v) => !v.config?.error, 'the checkpoint notice is gone once the controller repeated the same config', 20_000)
      .then(() => t.pass('the checkpoint notice is gone once the controller repeated the same config'),
        (err: Error) => t.fail(err.message, { lines: device.logs().slice(-25) }));
    const rows = JSON.parse((await ctl.zedctl(['devices', '--json'])).out) as Array<{ serial: string }>;
    t.equal(rows.filter((r) => r.serial === 'serial-e2e-1').length, 1, 'still one device');
  });

  await t.test('an epoch bump makes the device send all its info again', async (t) => {
    const before = await ctl.show('serial-e2e-1');
    const seqOf = (v: ShownDevice) => JSON.parse(fs.readFileSync(path.join(ctl.stateDir, 'info', uuid, 'app', `${web}.json`), 'utf8')).body.seq as number;
    const s0 = seqOf(before);
    await ctl.zedctl(['epoch', 'bump']);
    await waitUntil(async () => seqOf(await ctl.show('serial-e2e-1')) > s0, 'app info sent again', 30_000);
    t.pass('the unchanged app info was re-sent after the epoch changed');
  });
});

t.test('an unknown serial is refused with a clear error, retried, and joins once allowed', async (t) => {
  const ctl = new Controller();
  t.teardown(() => ctl.cleanup());
  await ctl.start();
  const known = await ctl.addDevice('serial-known');
  const prov = { ...known, serial: 'serial-stranger', token: 'stranger-token-123' };
  const device = new Device();
  t.teardown(() => device.cleanup());
  fs.writeFileSync(path.join(device.dirs.config, 'controller.json'), JSON.stringify(prov), { mode: 0o600 });
  await device.start();
  await waitUntil(() => device.logRecords().filter((r) => r.msg === 'onboarding not done; will retry').length >= 2, 'two refused attempts', 30_000);
  const refusals = device.logRecords().filter((r) => r.msg === 'onboarding not done; will retry');
  t.match(refusals[0]?.reason, /not-registered/, 'the controller\'s reason is logged');
  await waitUntil(() => device.logRecords().some((r) => r.msg === 'LED code 18: onboarding failed: the controller does not know this device'), 'LED code 18', 10_000);
  t.ok(Number(refusals[1]?.retryInMs) > Number(refusals[0]?.retryInMs), `the backoff grows (${refusals.map((r) => r.retryInMs).join(', ')} ms)`);
  const rows = JSON.parse((await ctl.zedctl(['devices', '--json'])).out) as Array<{ serial: string; state: string }>;
  t.equal(rows.find((r) => r.serial === 'serial-stranger')?.state, 'pending', 'the operator sees it pending');
  await ctl.zedctl(['device', 'allow', 'serial-stranger', '--token', 'stranger-token-123', '--out', path.join(ctl.stateDir, '.allowed.json')]);
  await ctl.waitFor('serial-stranger', (v) => v.record.state === 'onboarded' && v.status?.state === 'online', 'allowed device onboards on its next try', 60_000);

  // The operator forgets it: its account goes, and the serial can be registered again.
  await ctl.zedctl(['device', 'remove', 'serial-stranger']);
  const after = JSON.parse((await ctl.zedctl(['devices', '--json'])).out) as Array<{ serial: string }>;
  t.notOk(after.some((r) => r.serial === 'serial-stranger'), 'removed from the device list');
  const rec = readOnboarded(device.dirs)!;
  const server = JSON.parse(fs.readFileSync(path.join(ctl.stateDir, 'server.json'), 'utf8'));
  const err = await mqtt.connectAsync(server.url, {
    protocolVersion: 4, clientId: 'e2e-old-account', reconnectPeriod: 0, username: rec.broker.username,
    password: openSecret(rec.broker.password, readDeviceKeys(device.dirs)!.box.secretKey),
  }).then((c) => { void c.endAsync(); return undefined; }, (e: Error & { code?: number }) => e);
  t.equal(err?.code, 5, 'its broker account no longer connects (not authorized)');
  await ctl.zedctl(['device', 'add', 'serial-stranger', '--out', path.join(ctl.stateDir, '.again.json')]);
  t.pass('the serial can be added again');
});
