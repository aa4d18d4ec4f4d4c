// The embedded broker as the controller's clients meet it: real aedes on a real
// port, real mqtt.js clients, accounts with real scrypt hashes, retained
// messages on a real disk.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { connect, type IClientPublishOptions, type ISubscriptionGrant, type MqttClient } from 'mqtt';
import { API_ROOT, topics } from '../../api/topics';
import type { AccountLookup } from '../../controller/broker-accounts';
import { Accounts } from '../lib/broker-accounts';
import { startEmbeddedBroker, type EmbeddedBroker, type EmbeddedBrokerOptions } from '../../controller/embedded-broker';
import { Logger } from '../../lib/log';
import { mqttOptions } from '../../lib/mqtt-options';

function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-embedded-broker-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Log lines kept in memory, to check what reaches the log (and what must not). */
function memoryLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: new Logger({ source: 'embedded-broker', level: 'debug', sink: { write: (l) => lines.push(l) } }) };
}

async function startBroker(t: Test, opts: Partial<EmbeddedBrokerOptions> & { accounts: AccountLookup; dataDir: string }, admit = true): Promise<EmbeddedBroker> {
  const broker = await startEmbeddedBroker({ port: 0, log: memoryLog().log, ...opts });
  t.teardown(() => broker.close());
  if (admit) broker.admitDevices();
  return broker;
}

interface Received { topic: string; payload: string; retain: boolean }

/** A connected client plus everything it received, in order. */
interface Peer { client: MqttClient; inbox: Received[]; next(pred: (m: Received) => boolean, what: string): Promise<Received> }

function peer(client: MqttClient): Peer {
  const inbox: Received[] = [];
  const waiters: Array<{ pred: (m: Received) => boolean; resolve: (m: Received) => void }> = [];
  client.on('message', (topic, payload, packet) => {
    const m = { topic, payload: payload.toString(), retain: packet.retain };
    inbox.push(m);
    for (const w of waiters.filter((w) => w.pred(m))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    }
  });
  return {
    client,
    inbox,
    next(pred, what) {
      const seen = inbox.find(pred);
      if (seen) return Promise.resolve(seen);
      // A safety net so a broken broker fails the test with a reason instead of hanging it.
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`never received ${what}; got ${JSON.stringify(inbox)}`)), 15_000);
        waiters.push({ pred, resolve: (m) => { clearTimeout(timer); resolve(m); } });
      });
    },
  };
}

interface LoginOptions { clientId?: string; clean?: boolean; caPem?: string; password?: string }

/** Connects as an account (reconnecting is left off, so a disconnect is visible); resolves on CONNACK 0. */
async function login(t: Test, broker: EmbeddedBroker, accounts: Accounts, username: string, o: LoginOptions = {}): Promise<Peer> {
  const options = mqttOptions(
    { url: broker.url, username, password: o.password ?? accounts.passwords.get(username) ?? 'none', caPem: o.caPem },
    { clientId: o.clientId ?? `${username}-${randomUUID().slice(0, 8)}`, clean: o.clean ?? true, reconnectPeriod: 0 },
  );
  const client = connect(broker.url, options);
  t.teardown(() => { client.end(true); });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return peer(client);
}

async function refusedLogin(t: Test, broker: EmbeddedBroker, accounts: Accounts, username: string, o: LoginOptions = {}): Promise<Error & { code?: unknown }> {
  return login(t, broker, accounts, username, o).then(
    () => { throw new Error(`${username} was let in`); },
    (err: Error) => err,
  );
}

/** Publishes something the broker must refuse: aedes answers a denied publish by dropping the connection. */
async function deniedPublish(peer: Peer, topic: string, payload: string, opts: IClientPublishOptions): Promise<void> {
  const closed = new Promise<void>((resolve, reject) => {
    // A safety net so an accepted publish fails the test with a reason instead of hanging it.
    const timer = setTimeout(() => reject(new Error(`publish to ${topic} was not refused: still connected`)), 15_000);
    peer.client.once('close', () => { clearTimeout(timer); resolve(); });
  });
  peer.client.publish(topic, payload, opts, () => { /* a QoS 1 denial never gets its PUBACK */ });
  await closed;
}

async function grants(peer: Peer, filter: string): Promise<number[]> {
  try {
    return (await peer.client.subscribeAsync(filter, { qos: 1 })).map((g: ISubscriptionGrant) => g.qos);
  } catch (err) {
    // mqtt.js rejects a SUBACK carrying 0x80, with the packet attached.
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted;
  }
}

function setup(t: Test) {
  const accounts = new Accounts();
  const dataDir = tempDir(t);
  const devA = randomUUID();
  const devB = randomUUID();
  accounts.add('controller', { kind: 'controller' });
  accounts.add('onboard', { kind: 'onboard' });
  accounts.add(devA, { kind: 'device', deviceId: devA });
  accounts.add(devB, { kind: 'device', deviceId: devB });
  return { accounts, dataDir, devA, devB };
}

t.test('only known accounts with the right password get in', async (t) => {
  const { accounts, dataDir, devA } = setup(t);
  const { log, lines } = memoryLog();
  const broker = await startBroker(t, { accounts, dataDir, log });
  t.match(broker.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);

  const wrong = await refusedLogin(t, broker, accounts, devA, { password: 'guess' });
  t.equal(wrong.code, 5, 'wrong password: CONNACK 5 Not authorized');
  const unknown = await refusedLogin(t, broker, accounts, 'nobody', { password: 'x' });
  t.equal(unknown.code, 5, 'unknown user: CONNACK 5');
  const empty = await refusedLogin(t, broker, accounts, '', { password: 'x' });
  t.equal(empty.code, 5, 'empty username: CONNACK 5');

  await login(t, broker, accounts, devA);
  t.pass('the right password connects');
  await login(t, broker, accounts, devA);
  t.pass('and connects again (from the cache)');
  const oldPassword = accounts.passwords.get(devA)!;
  accounts.add(devA, { kind: 'device', deviceId: devA }); // a new password, as the controller rotates it
  const stale = await refusedLogin(t, broker, accounts, devA, { password: oldPassword });
  t.equal(stale.code, 5, 'the old password, checked and cached before, no longer gets in');
  await login(t, broker, accounts, devA);
  t.pass('the new password works');

  t.ok(lines.some((l) => l.includes('connection refused')), 'refusals are logged');
  for (const secret of [...accounts.passwords.values(), oldPassword, 'guess']) {
    t.notOk(lines.some((l) => l.includes(secret)), 'no password in the log');
  }
});

t.test('devices wait ("server unavailable") until the controller has subscribed; the controller does not', async (t) => {
  const { accounts, dataDir, devA } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir }, false);
  const early = await refusedLogin(t, broker, accounts, devA);
  t.equal(early.code, 3, 'a device before the controller subscribed: CONNACK 3 Server unavailable (it retries)');
  await login(t, broker, accounts, 'controller');
  t.pass('the controller itself gets in');
  broker.admitDevices();
  await login(t, broker, accounts, devA);
  t.pass('then the device does');
});

t.test('a device client turned away while the controller starts gets in by itself once it has subscribed', async (t) => {
  const { accounts, dataDir, devA } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir }, false);
  // As zedagent connects: mqttOptions with its own reconnecting (every 200 ms here).
  const client = connect(broker.url, mqttOptions({ url: broker.url, username: devA, password: accounts.passwords.get(devA)! }, { clientId: devA, clean: false, reconnectPeriod: 200 }));
  t.teardown(() => { client.end(true); });
  const refusals: number[] = [];
  client.on('error', (err) => refusals.push((err as Error & { code?: number }).code ?? -1));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no second refusal within 15 s (refusals: ${refusals.join(', ')})`)), 15_000);
    const check = (): void => { if (refusals.length >= 2) { clearTimeout(timer); client.off('error', check); resolve(); } };
    client.on('error', check);
  });
  t.same(refusals.slice(0, 2), [3, 3], 'refused with CONNACK 3, and it tried again');
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the device did not connect within 15 s of the devices being admitted')), 15_000);
    client.once('connect', () => { clearTimeout(timer); resolve(); });
  });
  broker.admitDevices();
  await connected;
  t.ok(client.connected, 'connected once devices are admitted, with no help');
});

t.test('a device writes only its own "up" subtree', async (t) => {
  const { accounts, dataDir, devA, devB } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const controller = await login(t, broker, accounts, 'controller');
  t.same(await grants(controller, `${API_ROOT}/#`), [1]);

  await deniedPublish(await login(t, broker, accounts, devA), topics.status(devB), 'online', { qos: 1 });
  t.pass("A publishing to B's up topic is disconnected");
  await deniedPublish(await login(t, broker, accounts, devA), topics.config(devB), 'forged config', { qos: 1, retain: true });
  t.pass("A publishing to B's config is disconnected");
  await deniedPublish(await login(t, broker, accounts, devA), topics.config(devA), 'own config', { qos: 0 });
  t.pass('A publishing to its own "down" subtree (QoS 0) is disconnected');

  const a = await login(t, broker, accounts, devA);
  await a.client.publishAsync(topics.status(devA), 'online', { qos: 1 });
  await controller.next((m) => m.topic === topics.status(devA), "A's status");
  t.same(controller.inbox.map((m) => m.topic), [topics.status(devA)], 'the controller got only what A may send');

  const b = await login(t, broker, accounts, devB);
  t.same(await grants(b, topics.deviceDown(devB)), [1]);
  await controller.client.publishAsync(topics.config(devB), 'real config', { qos: 1 });
  await b.next((m) => m.topic === topics.config(devB), "B's config");
  t.same(b.inbox.map((m) => m.payload), ['real config'], "the forged config never reached B, not even as retained");
  await controller.next((m) => m.topic === topics.config(devB), 'the echo of its own config');

  // Out: A's status to the controller, the config to B, and its echo to the controller (3.1.1 has no no-local).
  t.same(broker.stats(), { clients: 3, messagesIn: 2, messagesOut: 3 }, 'stats count the clients and only allowed messages');
});

t.test('a device reads only its own "down" subtree', async (t) => {
  const { accounts, dataDir, devA, devB } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const a = await login(t, broker, accounts, devA);
  t.same(await grants(a, topics.deviceDown(devB)), [128], "B's down/# is refused");
  t.same(await grants(a, `${API_ROOT}/#`), [128], 'the whole API tree is refused');
  t.same(await grants(a, `${API_ROOT}/dev/+/down/config`), [128], 'a wildcard over devices is refused');
  t.same(await grants(a, '$SYS/#'), [128], "the broker's $SYS tree is refused");
  t.same(await grants(a, topics.status(devA)), [128], 'its own "up" (write-only) is refused');
  t.same(await grants(a, topics.deviceDown(devA)), [1], 'its own down/# is granted');

  const controller = await login(t, broker, accounts, 'controller');
  await controller.client.publishAsync(topics.config(devB), 'for B', { qos: 1 });
  await controller.client.publishAsync(topics.config(devA), 'for A', { qos: 1 });
  await a.next((m) => m.topic === topics.config(devA), 'its config');
  t.same(a.inbox.map((m) => m.payload), ['for A'], 'still connected after the refusals, and only its own config arrives');
});

t.test("a refused filter in a persistent session collects nothing while the device is away", async (t) => {
  // aedes stores every filter of a SUBSCRIBE in a clean:false session once one
  // is granted; without the check on delivery, B's config would be queued for A.
  const { accounts, dataDir, devA, devB } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const clientId = `dev-${devA}`;
  const away = await login(t, broker, accounts, devA, { clientId, clean: false });
  const granted = await away.client.subscribeAsync({ [topics.deviceDown(devA)]: { qos: 1 }, [`${API_ROOT}/#`]: { qos: 1 } })
    .then((g) => g.map((x) => x.qos), (err: { packet?: { granted?: number[] } }) => err.packet?.granted);
  t.same(granted, [1, 128], 'one SUBSCRIBE: own down/# granted, the API tree refused');
  await away.client.endAsync();

  const controller = await login(t, broker, accounts, 'controller');
  await controller.client.publishAsync(topics.config(devB), 'for B', { qos: 1 });
  await controller.client.publishAsync(topics.config(devA), 'for A', { qos: 1 });

  const back = await login(t, broker, accounts, devA, { clientId, clean: false });
  await back.next((m) => m.topic === topics.config(devA), 'its queued config');
  t.same(back.inbox.map((m) => m.payload), ['for A'], "B's config was not delivered from the offline queue");
});

t.test('the onboarding account may only ask and hear answers', async (t) => {
  const { accounts, dataDir, devA } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const controller = await login(t, broker, accounts, 'controller');
  await controller.client.subscribeAsync(`${API_ROOT}/#`, { qos: 1 });
  const serial = 'SN-0001';

  const onboard = await login(t, broker, accounts, 'onboard');
  t.same(await grants(onboard, topics.onboardReply(serial)), [1], 'its reply topic is granted');
  t.same(await grants(onboard, `${API_ROOT}/onboard/+/request`), [128], "others' requests are refused");
  t.same(await grants(onboard, topics.deviceDown(devA)), [128], "a device's config is refused");
  await onboard.client.publishAsync(topics.onboardRequest(serial), 'please', { qos: 1 });
  await controller.next((m) => m.topic === topics.onboardRequest(serial), 'the request');
  await controller.client.publishAsync(topics.onboardReply(serial), 'welcome', { qos: 1, retain: true });
  t.equal((await onboard.next((m) => m.topic === topics.onboardReply(serial), 'the reply')).payload, 'welcome');

  await deniedPublish(await login(t, broker, accounts, 'onboard'), topics.onboardReply(serial), 'forged reply', { qos: 1 });
  t.pass('publishing a reply is disconnected');
  await deniedPublish(await login(t, broker, accounts, 'onboard'), topics.status(devA), 'online', { qos: 1 });
  t.pass("publishing as a device is disconnected");
  await onboard.client.publishAsync(topics.onboardRequest(serial), 'again', { qos: 1 });
  await controller.next((m) => m.payload === 'again', 'the second request');
  t.same(controller.inbox.map((m) => m.payload), ['please', 'welcome', 'again'], 'nothing forged reached the controller');
});

t.test('retained config survives a restart; an empty payload removes it for good', async (t) => {
  const { accounts, dataDir, devB } = setup(t);
  const marker = `${API_ROOT}/dev/${devB}/down/marker`;
  // Each check subscribes afresh, then waits for a live marker the controller
  // sends after the SUBACK: the broker sends a subscription's retained messages
  // right after its SUBACK, so anything retained arrives before the marker.
  const configSeenBy = async (broker: EmbeddedBroker, n: number): Promise<string[]> => {
    const b = await login(t, broker, accounts, devB);
    await b.client.subscribeAsync(topics.deviceDown(devB), { qos: 1 });
    const controller = await login(t, broker, accounts, 'controller');
    await controller.client.publishAsync(marker, `marker ${n}`, { qos: 1 });
    await b.next((m) => m.payload === `marker ${n}`, 'the marker');
    await Promise.all([b.client.endAsync(), controller.client.endAsync()]);
    return b.inbox.filter((m) => m.topic === topics.config(devB)).map((m) => `${m.payload} retain=${m.retain}`);
  };

  const first = await startBroker(t, { accounts, dataDir });
  const controller = await login(t, first, accounts, 'controller');
  await controller.client.publishAsync(topics.config(devB), 'config v1', { qos: 1, retain: true });
  await controller.client.publishAsync(topics.config(devB), 'config v2', { qos: 1, retain: true });
  t.same(await configSeenBy(first, 1), ['config v2 retain=true'], 'the latest retained config is delivered on subscribe');
  await first.close();

  const second = await startBroker(t, { accounts, dataDir });
  t.same(await configSeenBy(second, 2), ['config v2 retain=true'], 'and still after a restart on the same data dir');
  const c2 = await login(t, second, accounts, 'controller');
  await c2.client.publishAsync(topics.config(devB), '', { qos: 1, retain: true });
  t.same(await configSeenBy(second, 3), [], 'an empty retained payload removes it');
  await second.close();

  const third = await startBroker(t, { accounts, dataDir });
  t.same(await configSeenBy(third, 4), [], 'also after a restart');
  t.same(fs.readdirSync(path.join(dataDir, 'retained')), [], 'and no file is left for it');
});

t.test('a clean:false device gets the QoS 1 messages sent while it was away', async (t) => {
  const { accounts, dataDir, devB } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const clientId = `dev-${devB}`;
  const first = await login(t, broker, accounts, devB, { clientId, clean: false });
  await first.client.subscribeAsync(topics.deviceDown(devB), { qos: 1 });
  await first.client.endAsync();

  const controller = await login(t, broker, accounts, 'controller');
  for (const n of [1, 2, 3]) await controller.client.publishAsync(`${API_ROOT}/dev/${devB}/down/cmd`, `cmd ${n}`, { qos: 1 });

  const back = await login(t, broker, accounts, devB, { clientId, clean: false });
  await back.next((m) => m.payload === 'cmd 3', 'the last queued message');
  t.same(back.inbox.map((m) => m.payload), ['cmd 1', 'cmd 2', 'cmd 3'], 'all of them, in order');
});

t.test("another account cannot take a device's client id", async (t) => {
  const { accounts, dataDir, devA, devB } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const clientId = `dev-${devB}`;
  const b = await login(t, broker, accounts, devB, { clientId, clean: false });
  await b.client.subscribeAsync(topics.deviceDown(devB), { qos: 1 });

  const thief = await refusedLogin(t, broker, accounts, devA, { clientId });
  t.equal(thief.code, 2, 'CONNACK 2 Identifier rejected while B is connected');
  await b.client.endAsync();
  const later = await refusedLogin(t, broker, accounts, devA, { clientId });
  t.equal(later.code, 2, "and while B's persistent session waits for it");

  const controller = await login(t, broker, accounts, 'controller');
  await controller.client.publishAsync(topics.config(devB), 'for B', { qos: 1 });
  const back = await login(t, broker, accounts, devB, { clientId, clean: false });
  t.equal((await back.next((m) => m.topic === topics.config(devB), "B's config")).payload, 'for B', 'B still owns its session');
});

t.test('a removed account loses its rights while connected', async (t) => {
  const { accounts, dataDir, devA } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const a = await login(t, broker, accounts, devA);
  await a.client.publishAsync(topics.status(devA), 'online', { qos: 1 });
  accounts.records.delete(devA);
  await deniedPublish(a, topics.status(devA), 'still here', { qos: 1 });
  t.pass('its next publish is refused (disconnected)');
  t.equal((await refusedLogin(t, broker, accounts, devA)).code, 5, 'and it cannot log in again');
});

t.test('mqtts with a self-signed certificate', async (t) => {
  const dir = tempDir(t);
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const certPem = fs.readFileSync(certFile, 'utf8');
  const { accounts, dataDir, devA } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir, tls: { keyPem: fs.readFileSync(keyFile, 'utf8'), certPem } });
  t.match(broker.url, /^mqtts:\/\/127\.0\.0\.1:\d+$/);

  const a = await login(t, broker, accounts, devA, { caPem: certPem });
  await a.client.publishAsync(topics.status(devA), 'online', { qos: 1 });
  t.pass('a client given the certificate as CA connects and publishes');
  const stranger = await refusedLogin(t, broker, accounts, devA);
  t.match(stranger.code, /SELF_SIGNED|UNABLE_TO_VERIFY/, 'a client without it refuses the server');
});

t.test('close() resolves, and frees the port, with a connection that never sent CONNECT', async (t) => {
  const { accounts, dataDir } = setup(t);
  const broker = await startBroker(t, { accounts, dataDir });
  const idle = net.connect(broker.port, '127.0.0.1'); // never sends CONNECT
  t.teardown(() => { idle.destroy(); });
  await new Promise((resolve) => idle.once('connect', resolve));
  await broker.close();
  const again = net.createServer();
  await new Promise<void>((resolve, reject) => { again.once('error', reject); again.listen(broker.port, '127.0.0.1', resolve); });
  again.close();
  t.pass('the port can be bound again right after close()');
});
