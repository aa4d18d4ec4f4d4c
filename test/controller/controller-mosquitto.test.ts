// The controller on a real Mosquitto (dynamic security, TLS): it creates its own
// accounts with the admin account, two replicas share one state dir and split
// the device traffic, and a device onboards, gets its config and reports.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import t from 'tap';
import { openEnvelope, seal } from '../../api/envelope';
import type { AppInfo } from '../../api/info';
import { keyId, newBoxKeyPair, newSignKeyPair, signerFor, verifierFor } from '../../lib/keys';
import { KINDS, type ConfigBody, type InfoBody, type OnboardReply, type OnboardRequest } from '../../api/messages';
import { openSecret } from '../../lib/secrets';
import { topics } from '../../api/topics';
import type { Provisioning } from '../../api/provisioning';
import { Logger } from '../../lib/log';
import { mqttOptions } from '../../lib/mqtt-options';
import { zedctl, type ZedctlEnv } from '../../controller/main';
import { startController } from '../../controller/server';
import { startMosquitto } from '../lib/mosquitto';
import { waitUntil } from '../lib/wait';

const WAIT_MS = 20_000; // a bound so a broken run ends, not a performance limit
const example = fs.readFileSync(path.join(__dirname, '../../docs/examples/device-config.json'), 'utf8');

t.test('two replicas on Mosquitto onboard and configure a device', async (t) => {
  const mosq = await startMosquitto({ name: 'zedctl' });
  t.teardown(() => mosq.cleanup());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedctl-mosq-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const stateDir = path.join(dir, 'state');
  const logLines: string[] = [];
  const log = new Logger({ source: 'test', sink: { write: (l) => logLines.push(l) } });
  const clients: MqttClient[] = [];
  t.teardown(() => clients.forEach((c) => c.end(true)));

  const a = await startController({ stateDir, brokerUrl: mosq.url, caPem: mosq.caPem, dynsecAdmin: mosq.admin, replica: 'a', log });
  t.teardown(() => a.close());
  // The second replica finds everything in server.json, the admin account included.
  const b = await startController({ stateDir, brokerUrl: mosq.url, replica: 'b', log });
  t.teardown(() => b.close());

  const cli = async (...args: string[]) => {
    let out = '';
    let err = '';
    const env: ZedctlEnv = { out: (s) => (out += s), err: (s) => (err += s) };
    const code = await zedctl.main([...args, '--state', stateDir], env);
    return { code, out, err };
  };
  const added = await cli('device', 'add', 'MQ-1');
  t.equal(added.code, 0, added.err);
  const prov = JSON.parse(added.out) as Provisioning;
  t.equal(prov.broker.caPem, mosq.caPem, 'the provisioning file carries the broker CA');

  const open = async (username: string, password: string) => {
    const mq = connect(prov.broker.url, mqttOptions({ url: prov.broker.url, caPem: prov.broker.caPem, username, password },
      { clientId: `dev-${randomBytes(4).toString('hex')}`, clean: true, reconnectPeriod: 0 }));
    clients.push(mq);
    await new Promise<void>((resolve, reject) => (mq.once('connect', () => resolve()), mq.once('error', reject)));
    return mq;
  };
  const nextMessage = (mq: MqttClient, topic: string, pred: (p: Buffer) => boolean) => new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing on ${topic} within ${WAIT_MS} ms`)), WAIT_MS);
    const on = (tp: string, p: Buffer) => {
      if (tp === topic && pred(p)) (clearTimeout(timer), mq.off('message', on), resolve(p));
    };
    mq.on('message', on);
  });

  const sign = newSignKeyPair();
  const box = newBoxKeyPair();
  const ob = await open(prov.onboarding.username, prov.onboarding.password);
  await ob.subscribeAsync(topics.onboardReply('MQ-1'), { qos: 1 });
  const req: OnboardRequest = { serial: 'MQ-1', token: prov.token, signPublicKey: sign.publicKey, boxPublicKey: box.publicKey, nonce: randomBytes(12).toString('hex'), time: new Date().toISOString() };
  const replyP = nextMessage(ob, topics.onboardReply('MQ-1'), (p) => {
    const o = openEnvelope(p, KINDS.onboardReply, verifierFor(prov.controllerPublicKey));
    return o.ok && (o.body as OnboardReply).nonce === req.nonce;
  });
  await ob.publishAsync(topics.onboardRequest('MQ-1'), seal(KINDS.onboardRequest, req, signerFor(sign), keyId(sign.publicKey)), { qos: 1 });
  const opened = openEnvelope(await replyP, KINDS.onboardReply, verifierFor(prov.controllerPublicKey));
  const reply = (opened.ok ? opened.body : undefined) as OnboardReply | undefined;
  if (!reply?.ok) return t.fail(`not onboarded: ${JSON.stringify(reply)}`);
  const deviceId = reply.deviceId;

  const own = await open(deviceId, openSecret(reply.broker.password, box.secretKey));
  const cfgFile = path.join(dir, 'config.json');
  fs.writeFileSync(cfgFile, example);
  t.match(await cli('config', 'set', deviceId, cfgFile), { code: 0, out: /config seq 1 sent/ });
  const cfgP = nextMessage(own, topics.config(deviceId), () => true);
  await own.subscribeAsync(topics.config(deviceId), { qos: 1 });
  const cfg = openEnvelope(await cfgP, KINDS.config, verifierFor(prov.controllerPublicKey));
  t.match(cfg.ok && (cfg.body as ConfigBody), { deviceId, seq: 1 });

  // Several objects, so both replicas likely get some: together they store all.
  const apps: AppInfo[] = [1, 2, 3, 4, 5, 6].map((i) => ({ id: `a0c1d2e3-000${i}-4f00-9000-00000000000${i}`, name: `app${i}`, state: 'RUNNING', errors: [], volumeRefs: [] }));
  let seq = 0;
  for (const app of apps) {
    const body: InfoBody = { deviceId, kind: 'app', id: app.id, seq: ++seq, time: new Date().toISOString(), value: app };
    await own.publishAsync(topics.info(deviceId, 'app', app.id), seal(KINDS.info, body, signerFor(sign), keyId(sign.publicKey)), { qos: 1, retain: true });
  }
  await waitUntil(async () => JSON.parse((await cli('devices', '--json')).out)[0]?.apps === apps.length, 'every app stored', WAIT_MS);
  const total = a.counters().ingest.accepted + b.counters().ingest.accepted;
  t.equal(total, apps.length, 'each message handled once, by one replica');
  t.equal(a.counters().onboarding.granted + b.counters().onboarding.granted, 1);
  t.comment(`replica a took ${a.counters().ingest.accepted}, b took ${b.counters().ingest.accepted}`);
});
