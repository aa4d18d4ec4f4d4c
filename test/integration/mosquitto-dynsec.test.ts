// The dynsec driver against a real Mosquitto 2.0.11 over TLS: who can log in,
// who can send and hear what once accounts are provisioned through dynsec,
// onboarding, removal, shared subscriptions between controller replicas, and
// an offline device's queue across a disconnect and a broker restart.
// Absence is shown with a sentinel: a later allowed message from the same
// sender arrives, so anything refused before it would have arrived first.
import { randomUUID } from 'node:crypto';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import t from 'tap';
import { controllerFilters, shared, topics } from '../../api/topics';
import { connectDynsec, type DynsecProvisioner } from '../../controller/broker-dynsec';
import { newPassword } from '../../controller/broker-accounts';
import { mqttOptions } from '../../lib/mqtt-options';
import { startMosquitto, type MosquittoInstance } from '../lib/mosquitto';

const WAIT_MS = 10_000; // only bounds a hang; nothing passes or fails on speed

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

/** A connected client and everything it has received, in order. */
interface TestClient {
  mqtt: MqttClient;
  inbox: Received[];
  sessionPresent: boolean;
  /** Resolves once the inbox satisfies pred. */
  until(pred: (inbox: Received[]) => boolean, what: string): Promise<void>;
  closed: Promise<void>;
}

let broker: MosquittoInstance;
let dynsec: DynsecProvisioner;
const clients = new Set<MqttClient>();
const ctl = { username: 'zedctl', password: newPassword() };
const devA = { uuid: randomUUID(), password: newPassword() };
const devB = { uuid: randomUUID(), password: newPassword() };
const onboard = { username: 'onboarding', password: newPassword() };

function options(username: string, password: string, clientId: string, clean = true, trustOurCa = true): IClientOptions {
  // reconnectPeriod 0: a client the broker drops stays dropped, as the tests expect.
  const caPem = trustOurCa ? broker.caPem : undefined;
  return mqttOptions({ url: broker.url, caPem, username, password }, { clientId, clean, reconnectPeriod: 0 });
}

/** Connects, collecting messages from the first packet on (a queued session delivers right after CONNACK). */
function open(opts: IClientOptions): Promise<TestClient> {
  const client = connect(broker.url, opts);
  clients.add(client);
  const inbox: Received[] = [];
  const waiters = new Set<() => void>();
  client.on('message', (topic, payload, packet) => {
    inbox.push({ topic, payload: payload.toString(), retain: packet.retain });
    for (const w of waiters) w();
  });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const until = (pred: (inbox: Received[]) => boolean, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; inbox: ${JSON.stringify(inbox.slice(-10))}`));
      }, WAIT_MS);
      const check = (): void => {
        if (!pred(inbox)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  return new Promise((resolve, reject) => {
    client.once('connect', (connack) => {
      client.removeListener('error', reject);
      client.on('error', () => {}); // a drop shows as 'close'; tests look at that
      resolve({ mqtt: client, inbox, sessionPresent: connack.sessionPresent, until, closed });
    });
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

const asController = (clientId = `ctl-${randomUUID()}`) => open(options(ctl.username, ctl.password, clientId));
const asDevice = (dev: { uuid: string; password: string }, clientId = dev.uuid, clean = true) =>
  open(options(dev.uuid, dev.password, clientId, clean));

async function closeClient(c: TestClient): Promise<void> {
  await c.mqtt.endAsync();
  clients.delete(c.mqtt);
}

t.before(async () => {
  broker = await startMosquitto({ name: 'dynsec' });
  dynsec = await connectDynsec({ url: broker.url, caPem: broker.caPem, ...broker.admin });
  await dynsec.ensureDefaults();
  await dynsec.upsert(ctl.username, ctl.password, { kind: 'controller' });
  await dynsec.upsert(devA.uuid, devA.password, { kind: 'device', deviceId: devA.uuid });
  await dynsec.upsert(devB.uuid, devB.password, { kind: 'device', deviceId: devB.uuid });
  await dynsec.upsert(onboard.username, onboard.password, { kind: 'onboard' });
});

t.teardown(async () => {
  for (const c of clients) c.end(true);
  await dynsec?.close();
  await broker?.cleanup();
});

t.test('logins: wrong password, no CA, and the admin connection', async (t) => {
  await t.rejects(open(options(devA.uuid, 'not-the-password', 'wrong-pw')), /Not authorized/, 'wrong password refused');
  await t.rejects(open(options(devA.uuid, devA.password, 'no-ca', true, false)), { code: 'SELF_SIGNED_CERT_IN_CHAIN' },
    'without our CA the broker certificate is not trusted');
  await t.rejects(connectDynsec({ url: broker.url, caPem: broker.caPem, username: broker.admin.username, password: 'wrong' }),
    /dynsec: cannot connect .* as zedbox-admin: .*Not authorized/);
  await t.rejects(connectDynsec({ url: broker.url, caPem: broker.caPem, username: ctl.username, password: ctl.password }),
    /zedctl may not subscribe to \$CONTROL\/dynamic-security\/v1\/response/, 'a non-admin account cannot drive dynsec');
  const a = await asDevice(devA);
  t.ok(a.mqtt.connected, 'the right password over TLS with our CA connects');
  await closeClient(a);
});

t.test('a device publishes only its own "up" topics', async (t) => {
  const c = await asController();
  await c.mqtt.subscribeAsync('zedbox/v1/#', { qos: 1 });
  const b = await asDevice(devB);
  await b.mqtt.subscribeAsync(topics.deviceDown(devB.uuid), { qos: 1 });
  const a = await asDevice(devA);
  const refused = [
    topics.status(devB.uuid), topics.info(devB.uuid, 'app', 'x'), topics.metrics(devB.uuid),
    topics.config(devB.uuid), topics.config(devA.uuid),
  ];
  const own = [topics.info(devA.uuid, 'app', 'x'), topics.metrics(devA.uuid), topics.status(devA.uuid)];
  // MQTT 3.1.1 has no refusal in PUBACK: Mosquitto acknowledges and drops, so these resolve.
  for (const topic of [...refused, ...own]) await a.mqtt.publishAsync(topic, `from A to ${topic}`, { qos: 1 });
  await c.until((m) => m.some((x) => x.topic === topics.status(devA.uuid)), "A's last own message");
  t.same(c.inbox.map((x) => x.topic), own, "the controller got exactly A's own up messages");

  // B hears its config from the controller, never A's forgery sent before it.
  await c.mqtt.publishAsync(topics.config(devB.uuid), 'config for B from ctl', { qos: 1 });
  await b.until((m) => m.length > 0, 'B config');
  t.same(b.inbox.map((x) => x.payload), ['config for B from ctl']);
  await Promise.all([closeClient(a), closeClient(b), closeClient(c)]);
});

t.test("a device cannot read another device's config, retained or not", async (t) => {
  const c = await asController();
  await c.mqtt.publishAsync(topics.config(devB.uuid), 'retained config B', { qos: 1, retain: true });
  await c.mqtt.publishAsync(topics.config(devA.uuid), 'retained config A', { qos: 1, retain: true });
  const a = await asDevice(devA);
  for (const filter of [topics.deviceDown(devB.uuid), 'zedbox/v1/#', shared('x', topics.deviceDown(devB.uuid)), '#']) {
    // Mosquitto answers SUBACK 0x80; mqtt.js turns it into a rejection.
    await t.rejects(a.mqtt.subscribeAsync(filter, { qos: 1 }), /Subscribe error/, `A may not subscribe to ${filter}`);
  }
  await a.mqtt.subscribeAsync(topics.deviceDown(devA.uuid), { qos: 1 });
  await a.until((m) => m.length > 0, 'A own config');
  t.same(a.inbox, [{ topic: topics.config(devA.uuid), payload: 'retained config A', retain: true }], 'A got its own config only');
  const b = await asDevice(devB);
  await b.mqtt.subscribeAsync(topics.deviceDown(devB.uuid), { qos: 1 });
  await b.until((m) => m.length > 0, 'B own config');
  t.same(b.inbox.map((x) => x.payload), ['retained config B']);
  await Promise.all([closeClient(a), closeClient(b), closeClient(c)]);
});

t.test('onboarding: ask and hear the answer, nothing else', async (t) => {
  const serial = `SN-${randomUUID().slice(0, 8)}`;
  const c = await asController();
  await c.mqtt.subscribeAsync([controllerFilters.onboard, `zedbox/v1/onboard/+/reply`], { qos: 1 });
  const o = await open(options(onboard.username, onboard.password, `onboard-${serial}`));
  await o.mqtt.subscribeAsync(topics.onboardReply(serial), { qos: 1 });
  for (const filter of ['zedbox/v1/#', topics.deviceDown(devA.uuid), controllerFilters.onboard]) {
    await t.rejects(o.mqtt.subscribeAsync(filter, { qos: 1 }), /Subscribe error/, `onboarding may not subscribe to ${filter}`);
  }
  await o.mqtt.publishAsync(topics.onboardReply(serial), 'forged reply', { qos: 1 });
  await o.mqtt.publishAsync(topics.status(devA.uuid), 'forged status', { qos: 1 });
  await o.mqtt.publishAsync(topics.onboardRequest(serial), 'request', { qos: 1 });
  await c.until((m) => m.length > 0, 'the onboarding request');
  t.same(c.inbox.map((x) => [x.topic, x.payload]), [[topics.onboardRequest(serial), 'request']], 'only the request got through');
  await c.mqtt.publishAsync(topics.onboardReply(serial), 'reply', { qos: 1, retain: true });
  await o.until((m) => m.length > 0, 'the reply');
  t.same(o.inbox.map((x) => [x.topic, x.payload]), [[topics.onboardReply(serial), 'reply']]);
  // Clear the retained reply so no later test sees it.
  await c.mqtt.publishAsync(topics.onboardReply(serial), '', { qos: 1, retain: true });
  await Promise.all([closeClient(o), closeClient(c)]);
});

t.test('a command the plugin refuses rejects with its text; the admin account is out of reach', async (t) => {
  await t.rejects(dynsec.upsert('bad\u0001name', 'pw', { kind: 'onboard' }), /dynsec createRole: Role name not valid UTF-8/);
  await t.rejects(dynsec.upsert(broker.admin.username, 'pw', { kind: 'controller' }), /refusing to change the admin account/);
  await t.rejects(dynsec.remove(broker.admin.username), /refusing to change the admin account/);
  await dynsec.remove(`never-created-${randomUUID()}`); // a missing account counts as removed
});

t.test('default access: whatever no role grants is denied', async (t) => {
  const [answer] = await dynsec.run([{ command: 'getDefaultACLAccess' }]);
  t.same(answer?.data, { acls: [
    { acltype: 'publishClientSend', allow: false },
    { acltype: 'publishClientReceive', allow: false },
    { acltype: 'subscribe', allow: false },
    { acltype: 'unsubscribe', allow: true },
  ] });
});

t.test('a command nobody answers times out with a clear error', async (t) => {
  // An account that hears dynsec answers but may not send commands: the broker drops them silently.
  const { username, password } = { username: 'listener', password: newPassword() };
  await dynsec.run([
    { command: 'createRole', rolename: 'dynsec-listener', acls: [
      { acltype: 'subscribePattern', topic: '$CONTROL/dynamic-security/#', allow: true },
      { acltype: 'publishClientReceive', topic: '$CONTROL/dynamic-security/#', allow: true },
    ] },
    { command: 'createClient', username, password, roles: [{ rolename: 'dynsec-listener' }] },
  ]);
  const mute = await connectDynsec({ url: broker.url, caPem: broker.caPem, username, password, commandTimeoutMs: 300 });
  t.teardown(() => mute.close());
  await t.rejects(mute.upsert('someone', 'pw', { kind: 'onboard' }), /dynsec createRole: no answer within 0.3 s/);
});

t.test('upsert again replaces the password; remove ends the account and drops its connection', async (t) => {
  const a = await asDevice(devA);
  const oldPassword = devA.password;
  devA.password = newPassword();
  await dynsec.upsert(devA.uuid, devA.password, { kind: 'device', deviceId: devA.uuid });
  await a.closed; // Mosquitto 2.0.11 drops the user's connection on modifyClient
  t.pass('re-provisioning dropped the open connection');
  await t.rejects(open(options(devA.uuid, oldPassword, 'a-old')), /Not authorized/, 'the old password is refused');
  const a2 = await asDevice(devA);
  await a2.mqtt.subscribeAsync(topics.deviceDown(devA.uuid), { qos: 1 });
  await a2.until((m) => m.length > 0, 'A config with the new password');
  t.equal(a2.inbox[0]?.payload, 'retained config A', 'the ACLs still hold');

  await dynsec.remove(devA.uuid);
  await a2.closed;
  t.pass('remove dropped the open connection');
  await t.rejects(asDevice(devA, 'a-after'), /Not authorized/, 'a removed account cannot connect');
});

t.test('controller replicas share device messages through $share', async (t) => {
  const group = shared('zedctl', controllerFilters.info);
  const c1 = await asController('ctl-replica-1');
  const c2 = await asController('ctl-replica-2');
  await c1.mqtt.subscribeAsync(group, { qos: 1 });
  await c2.mqtt.subscribeAsync(group, { qos: 1 });
  const b = await asDevice(devB);
  const ids = Array.from({ length: 200 }, (_, i) => `obj-${i}`);
  await Promise.all(ids.map((id) => b.mqtt.publishAsync(topics.info(devB.uuid, 'app', id), id, { qos: 1 })));
  const total = (): number => c1.inbox.length + c2.inbox.length;
  await Promise.race([c1.until(() => total() >= 200, '200 in total'), c2.until(() => total() >= 200, '200 in total')]);
  // A later marker through the same group: once it is in, no duplicate of the 200 is still on its way.
  await b.mqtt.publishAsync(topics.info(devB.uuid, 'app', 'marker'), 'marker', { qos: 1 });
  const hasMarker = (m: Received[]): boolean => m.some((x) => x.payload === 'marker');
  await Promise.race([c1.until(hasMarker, 'marker'), c2.until(hasMarker, 'marker')]);
  const got = [...c1.inbox, ...c2.inbox].map((x) => x.payload).filter((p) => p !== 'marker');
  t.same(got.slice().sort(), ids.slice().sort(), 'every message exactly once in total');
  t.ok(c1.inbox.length > 0 && c2.inbox.length > 0, `both replicas got some (${c1.inbox.length} / ${c2.inbox.length})`);
  await Promise.all([closeClient(b), closeClient(c1), closeClient(c2)]);
});

t.test("an offline device's queue survives a disconnect and a broker restart", async (t) => {
  const session = `${devB.uuid}-session`;
  const first = await asDevice(devB, session, false);
  await first.mqtt.subscribeAsync(topics.deviceDown(devB.uuid), { qos: 1 });
  await first.until((m) => m.length > 0, 'retained config'); // the retained config arrives with the subscription
  await closeClient(first);

  const sendWhileAway = async (label: string): Promise<string[]> => {
    const c = await asController();
    const sent = Array.from({ length: 50 }, (_, i) => `${label}-${i}`);
    // Sequential and acknowledged: the broker holds each one before the next.
    for (const p of sent) await c.mqtt.publishAsync(topics.config(devB.uuid), p, { qos: 1 });
    await closeClient(c);
    return sent;
  };
  const reconnect = async (sent: string[]): Promise<TestClient> => {
    const b = await asDevice(devB, session, false);
    t.ok(b.sessionPresent, 'the broker kept the session');
    await b.until((m) => m.length >= sent.length, `${sent.length} queued messages`);
    t.same(b.inbox.map((x) => x.payload), sent, 'all queued messages, in order');
    t.notOk(b.inbox.some((x) => x.retain), 'queued, not replayed as retained');
    return b;
  };

  const whileDisconnected = await sendWhileAway('away');
  await closeClient(await reconnect(whileDisconnected));

  const acrossRestart = await sendWhileAway('restart');
  await broker.stop();
  await broker.start();
  const b = await reconnect(acrossRestart);
  await closeClient(b);
});
