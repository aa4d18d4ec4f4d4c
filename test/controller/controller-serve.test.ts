// The controller for real: `zedctl serve`'s controller with its embedded broker,
// the zedctl commands run in-process, and a test client playing a device with
// nothing but the api/ functions, over MQTT.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import t from 'tap';
import { openEnvelope, seal } from '../../api/envelope';
import type { AppInfo, ConfigInfo } from '../../api/info';
import { keyId, newBoxKeyPair, newSignKeyPair, signerFor, verifierFor, type BoxKeyPair, type SignKeyPair } from '../../lib/keys';
import { KINDS, type ConfigBody, type InfoBody, type OnboardReply, type OnboardRequest } from '../../api/messages';
import { openSecret, type Sealed } from '../../lib/secrets';
import { topics } from '../../api/topics';
import type { Provisioning } from '../../api/provisioning';
import { Logger } from '../../lib/log';
import { mqttOptions } from '../../lib/mqtt-options';
import { follow } from '../../controller/cli';
import { zedctl, type ZedctlEnv } from '../../controller/main';
import { startController } from '../../controller/server';
import { StateDir } from '../../controller/state-dir';
import { waitUntil } from '../lib/wait';

const WAIT_MS = 20_000; // a bound so a broken run ends, not a performance limit
const example = fs.readFileSync(path.join(__dirname, '../../docs/examples/device-config.json'), 'utf8');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedctl-serve-'));
const stateDir = path.join(dir, 'state');
const logLines: string[] = [];
const log = new Logger({ source: 'test', sink: { write: (l) => logLines.push(l) } });
const clients: MqttClient[] = [];

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const env: ZedctlEnv = { out: (s) => (out += s), err: (s) => (err += s) };
  const code = await zedctl.main([...args, '--state', stateDir], env);
  return { code, out, err };
}

/** An MQTT client whose messages can be awaited one by one. */
async function client(url: string, username: string, password: string): Promise<{ mq: MqttClient; next: (topic: string, pred?: (p: Buffer) => boolean) => Promise<Buffer> }> {
  const mq = connect(url, mqttOptions({ url, username, password }, { clientId: `test-${randomBytes(4).toString('hex')}`, clean: true, reconnectPeriod: 0 }));
  clients.push(mq);
  await new Promise<void>((resolve, reject) => {
    mq.once('connect', () => resolve());
    mq.once('error', reject);
  });
  const seen: { topic: string; payload: Buffer }[] = [];
  const waiters = new Set<() => void>();
  mq.on('message', (topic, payload) => {
    seen.push({ topic, payload });
    for (const w of waiters) w();
  });
  const next = (topic: string, pred: (p: Buffer) => boolean = () => true) =>
    new Promise<Buffer>((resolve, reject) => {
      const check = (): void => {
        const i = seen.findIndex((m) => m.topic === topic && pred(m.payload));
        if (i < 0) return;
        const [m] = seen.splice(i, 1);
        waiters.delete(check);
        clearTimeout(timer);
        resolve(m!.payload);
      };
      const timer = setTimeout(() => (waiters.delete(check), reject(new Error(`no message on ${topic} within ${WAIT_MS} ms`))), WAIT_MS);
      waiters.add(check);
      check();
    });
  return { mq, next };
}

interface FakeDevice {
  serial: string;
  sign: SignKeyPair;
  box: BoxKeyPair;
}

const newDevice = (serial: string): FakeDevice => ({ serial, sign: newSignKeyPair(), box: newBoxKeyPair() });

function request(dev: FakeDevice, token: string, over: Partial<OnboardRequest> = {}): { body: OnboardRequest; payload: Buffer } {
  const body: OnboardRequest = {
    serial: dev.serial, token, signPublicKey: dev.sign.publicKey, boxPublicKey: dev.box.publicKey,
    nonce: randomBytes(12).toString('hex'), time: new Date().toISOString(), zedboxVersion: 'test', ...over,
  };
  return { body, payload: seal(KINDS.onboardRequest, body, signerFor(dev.sign), keyId(dev.sign.publicKey)) };
}

/** Asks as a device does: again every 1.5 s (the controller takes one request per serial per second) until answered. */
async function onboard(ob: Awaited<ReturnType<typeof client>>, prov: Provisioning, dev: FakeDevice, token: string, over: Partial<OnboardRequest> = {}): Promise<OnboardReply> {
  // Answers come on the topic's serial (for a body naming another serial, too).
  await ob.mq.subscribeAsync(topics.onboardReply(dev.serial), { qos: 1 });
  const req = request(dev, token, over);
  const publish = () => void ob.mq.publishAsync(topics.onboardRequest(dev.serial), req.payload, { qos: 1 });
  publish();
  const retry = setInterval(publish, 1500);
  try {
    const payload = await ob.next(topics.onboardReply(dev.serial), (p) => {
      const o = openEnvelope(p, KINDS.onboardReply, verifierFor(prov.controllerPublicKey));
      return o.ok && (o.body as OnboardReply).nonce === req.body.nonce;
    });
    const opened = openEnvelope(payload, KINDS.onboardReply, verifierFor(prov.controllerPublicKey));
    if (!opened.ok) throw new Error(opened.error);
    return opened.body as OnboardReply;
  } finally {
    clearInterval(retry);
  }
}

function info(deviceId: string, seq: number, kind: InfoBody['kind'], id: string, value: unknown, dev: FakeDevice): Buffer {
  const body: InfoBody = { deviceId, kind, id, seq, time: new Date().toISOString(), value };
  return seal(KINDS.info, body, signerFor(dev.sign), keyId(dev.sign.publicKey));
}

t.teardown(async () => {
  for (const c of clients) c.end(true);
  fs.rmSync(dir, { recursive: true, force: true });
});

t.test('onboard, configure and watch a device through the embedded broker', async (t) => {
  const ctl = await startController({ stateDir, listen: { host: '127.0.0.1', port: 0 }, log });
  t.teardown(() => ctl.close());

  // --- the operator registers a device and hands it its provisioning file
  const added = await cli('device', 'add', 'SN-1');
  t.equal(added.code, 0, added.err);
  const prov = JSON.parse(added.out) as Provisioning;
  t.match(prov, { broker: { url: ctl.url }, onboarding: { username: String }, serial: 'SN-1', token: String });
  t.equal(prov.controllerPublicKey, new StateDir(stateDir).readKeys()?.sign.publicKey);
  const outFile = path.join(dir, 'sn2.json');
  t.equal((await cli('device', 'add', 'SN-2', '--out', outFile)).code, 0);
  t.equal(fs.statSync(outFile).mode & 0o777, 0o600, 'the provisioning file is private');
  const prov2 = JSON.parse(fs.readFileSync(outFile, 'utf8')) as Provisioning;
  t.match(await cli('device', 'add', 'bad/serial'), { code: 2, err: /invalid serial/ });

  // --- the device onboards with the shared onboarding account
  const ob = await client(prov.broker.url, prov.onboarding.username, prov.onboarding.password);
  const dev = newDevice('SN-1');
  const reply = await onboard(ob, prov, dev, prov.token);
  if (!reply.ok) return t.fail(`refused: ${reply.error}`);
  const password = openSecret(reply.broker.password, dev.box.secretKey);
  t.equal(reply.broker.username, reply.deviceId);
  const deviceId = reply.deviceId;

  // --- it connects with its own account; the operator sends it a config with secrets
  const own = await client(ctl.url, reply.broker.username, password);
  const cfg = JSON.parse(example);
  cfg.apps[0].env = { GREETING: 'hello', TOKEN: { secret: 'very-secret-value' } };
  const cfgFile = path.join(dir, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  const set = await cli('config', 'set', 'SN-1', cfgFile);
  t.equal(set.code, 0, set.err);
  t.match(set.out, /config seq 1 sent to SN-1/);
  await own.mq.subscribeAsync(topics.config(deviceId), { qos: 1 });
  const cfgMsg = openEnvelope(await own.next(topics.config(deviceId)), KINDS.config, verifierFor(prov.controllerPublicKey));
  if (!cfgMsg.ok) return t.fail(cfgMsg.error);
  const body = cfgMsg.body as ConfigBody;
  t.match(body, { deviceId, seq: 1, epoch: 0 });
  const env = (body.config as { apps: { env: Record<string, string | Sealed> }[] }).apps[0]!.env;
  t.equal(openSecret(env.TOKEN!, dev.box.secretKey), 'very-secret-value', 'the device opens its secret');
  const got = await cli('config', 'get', deviceId);
  t.equal(got.code, 0);
  t.notOk(got.out.includes('very-secret-value'), 'config get shows no secret in clear');
  t.match(got.out, /"sealed"/);

  const bad = JSON.parse(example);
  bad.apps[0].resources.memoryMiB = 1;
  fs.writeFileSync(cfgFile, JSON.stringify(bad));
  t.match(await cli('config', 'set', 'SN-1', cfgFile), { code: 1, err: /\/apps\/0\/resources\/memoryMiB/ }, 'a bad config is refused by path');

  // --- it reports; the operator sees it
  const configInfo: ConfigInfo = { source: 'controller', appliedVersion: '1', seq: 1, appliedAt: new Date().toISOString(), fieldErrors: [], unknownConfigItems: [] };
  const appInfo: AppInfo = { id: cfg.apps[0].id, name: 'hello', state: 'RUNNING', errors: [], volumeRefs: [] };
  await own.mq.publishAsync(topics.info(deviceId, 'config', 'global'), info(deviceId, 1, 'config', 'global', configInfo, dev), { qos: 1, retain: true });
  await own.mq.publishAsync(topics.info(deviceId, 'app', appInfo.id), info(deviceId, 2, 'app', appInfo.id, appInfo, dev), { qos: 1, retain: true });
  const status = { deviceId, state: 'online', bootId: 'boot-1', time: new Date().toISOString() };
  await own.mq.publishAsync(topics.status(deviceId), seal(KINDS.status, status, signerFor(dev.sign), keyId(dev.sign.publicKey)), { qos: 1, retain: true });
  await waitUntil(async () => JSON.parse((await cli('show', 'SN-1', '--json')).out).apps.length === 1, 'show lists the app', WAIT_MS);
  await waitUntil(async () => JSON.parse((await cli('show', 'SN-1', '--json')).out).status?.state === 'online', 'show has the status', WAIT_MS);
  const shown = await cli('show', 'SN-1');
  t.match(shown.out, /hello {2}RUNNING/);
  t.match(shown.out, /applied version 1 seq 1/);
  const rows = JSON.parse((await cli('devices', '--json')).out);
  t.match(rows, [{ serial: 'SN-1', state: 'onboarded', deviceId, online: 'online', configSeqApplied: 1, configSeqSent: 1, apps: 1, running: 1 }, { serial: 'SN-2', state: 'registered' }]);

  // --- follow prints what arrives
  let followed = '';
  const stop = new AbortController();
  const following = follow(new StateDir(stateDir), 'SN-1', false, { out: (s) => (followed += s), err: () => {} }, stop.signal);
  await waitUntil(() => followed.includes('following SN-1'), 'follow started', WAIT_MS);
  await own.mq.publishAsync(topics.info(deviceId, 'app', appInfo.id), info(deviceId, 3, 'app', appInfo.id, { ...appInfo, state: 'HALTED' }, dev), { qos: 1, retain: true });
  await waitUntil(() => followed.includes('HALTED'), 'follow printed the change', WAIT_MS);
  stop.abort();
  await following;
  t.match(followed, new RegExp(`app/${appInfo.id}  seq 3  hello HALTED`));

  // --- a new epoch resends the config with the next seq
  const bump = await cli('epoch', 'bump');
  t.equal(bump.code, 0, bump.err);
  t.match(bump.out, /epoch 1; config republished to 1 device/);
  const again = openEnvelope(await own.next(topics.config(deviceId)), KINDS.config, verifierFor(prov.controllerPublicKey));
  t.match(again.ok && again.body, { seq: 2, epoch: 1 });

  // --- the same device re-onboarding keeps its UUID; its old password stops working
  const re = await onboard(ob, prov, dev, prov.token);
  t.match(re, { ok: true, deviceId });
  await t.rejects(client(ctl.url, deviceId, password), 'the old password is refused');
  if (re.ok) await client(ctl.url, deviceId, openSecret(re.broker.password, dev.box.secretKey));

  // --- other keys under SN-1 are a conflict; a wrong token and a mismatched serial are refused
  t.match(await onboard(ob, prov, newDevice('SN-1'), prov.token), { ok: false, code: 'conflict' });
  t.match(await onboard(ob, prov2, newDevice('SN-2'), 'not-the-token'), { ok: false, code: 'bad-token' });
  t.match(await onboard(ob, prov2, newDevice('SN-2'), prov2.token, { serial: 'SN-3' }), { ok: false, code: 'invalid' }, 'a body for another serial than its topic');
  t.equal(new StateDir(stateDir).readDevice('SN-2')?.state, 'registered');

  // --- a forged request (not signed by the key it names) gets no answer and changes nothing
  const before = new StateDir(stateDir).readDevice('SN-2');
  const victim = newDevice('SN-2');
  const forged = request(victim, prov2.token);
  const otherKey = newSignKeyPair();
  const forgedPayload = seal(KINDS.onboardRequest, forged.body, signerFor(otherKey), keyId(victim.sign.publicKey));
  await ob.mq.publishAsync(topics.onboardRequest('SN-2'), forgedPayload, { qos: 1 });
  await waitUntil(() => ctl.counters().onboarding.dropped.signature === 1, 'the forged request was dropped', WAIT_MS);
  t.same(new StateDir(stateDir).readDevice('SN-2'), before, 'the record is unchanged');

  // --- an unknown serial becomes pending; once allowed with its token it onboards
  const stranger = newDevice('SN-NEW');
  const strangerToken = 'token-the-device-has';
  t.match(await onboard(ob, prov, stranger, strangerToken), { ok: false, code: 'not-registered' });
  t.match(JSON.parse((await cli('devices', '--json')).out), [{ serial: 'SN-1' }, { serial: 'SN-2' }, { serial: 'SN-NEW', state: 'pending' }]);
  t.match(await onboard(ob, prov, stranger, strangerToken), { ok: false, code: 'pending' });
  t.match(await cli('device', 'allow', 'SN-2'), { code: 1, err: /not pending/ });
  const allowed = await cli('device', 'allow', 'SN-NEW', '--token', strangerToken);
  t.equal(allowed.code, 0, allowed.err);
  t.equal(JSON.parse(allowed.out).token, strangerToken);
  t.match(await onboard(ob, prov, stranger, strangerToken), { ok: true });
  t.match(await cli('device', 'add', 'SN-NEW'), { code: 1, err: /already onboarded/ });

  const c = ctl.counters();
  t.match(c.onboarding, { granted: 3, refused: { conflict: 1, 'bad-token': 1, invalid: 1, 'not-registered': 1, pending: 1 } });
  t.ok(c.ingest.accepted >= 4, `ingest accepted ${c.ingest.accepted}`);
  t.equal(c.ingest.rejected.signature ?? 0, 0);
});
