// What devices send, into the state dir: only signed by the device the topic
// names, about itself, in shape, and newer than what is stored.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { seal } from '../../api/envelope';
import type { AppInfo, ConfigInfo } from '../../api/info';
import { keyId, newBoxKeyPair, newSignKeyPair, signerFor, type SignKeyPair } from '../../lib/keys';
import { KINDS, type InfoBody, type MetricsBody, type StatusBody } from '../../api/messages';
import { topics } from '../../api/topics';
import { Logger } from '../../lib/log';
import { waitUntil } from '../lib/wait';
import { follow } from '../../controller/cli';
import { Ingest } from '../../controller/ingest';
import { StateDir } from '../../controller/state-dir';

const DEV = 'aaaaaaaa-1111-4222-8333-444444444444';
const OTHER = 'bbbbbbbb-1111-4222-8333-444444444444';
const APP = 'cccccccc-1111-4222-8333-444444444444';
const TIME = '2026-05-06T07:08:09.000Z';
const deviceKeys = newSignKeyPair();

function setup(t: Test, eventsRotateBytes?: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedctl-ingest-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const state = new StateDir(dir, eventsRotateBytes);
  state.init();
  state.writeDevice({
    serial: 'SN-A', state: 'onboarded', deviceId: DEV, signPublicKey: deviceKeys.publicKey,
    boxPublicKey: newBoxKeyPair().publicKey, brokerUsername: DEV, createdAt: TIME, onboardedAt: TIME,
  });
  const lines: string[] = [];
  const ingest = new Ingest(state, new Logger({ source: 'test', sink: { write: (l) => lines.push(l) } }));
  return { state, ingest, lines };
}

const signed = (kind: string, body: unknown, keys: SignKeyPair = deviceKeys) => seal(kind, body, signerFor(keys), keyId(keys.publicKey));
const app = (state: AppInfo['state'] = 'RUNNING'): AppInfo => ({ id: APP, name: 'hello', state, errors: [], volumeRefs: [] });
const appInfo = (seq: number, value: unknown = app(), over: Partial<InfoBody> = {}): InfoBody => ({ deviceId: DEV, kind: 'app', id: APP, seq, time: TIME, value, ...over });
const appTopic = topics.info(DEV, 'app', APP);

t.test('a signed info from the registered device is stored and logged', async (t) => {
  const { state, ingest } = setup(t);
  t.same(ingest.handle(appTopic, signed(KINDS.info, appInfo(5))), { accepted: true });
  t.equal(state.readInfo(DEV, 'app', APP)?.body.seq, 5);
  t.same(state.readInfo(DEV, 'app', APP)?.body.value, app());
  const events = fs.readFileSync(state.eventsPath(DEV), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.match(events, [{ type: 'info', body: { seq: 5, kind: 'app' } }]);
  t.match(ingest.counters, { received: 1, accepted: 1, rejected: {} });
});

t.test('forged, foreign, unknown and malformed messages are each rejected and counted', async (t) => {
  const { state, ingest } = setup(t);
  const cases: [string, string, Buffer, string][] = [
    ['signed with another key', appTopic, signed(KINDS.info, appInfo(1), newSignKeyPair()), 'signature'],
    ['body names another device', appTopic, signed(KINDS.info, appInfo(1, app(), { deviceId: OTHER })), 'device-mismatch'],
    ['a device nobody onboarded', topics.info(OTHER, 'app', APP), signed(KINDS.info, { ...appInfo(1), deviceId: OTHER }), 'unknown-device'],
    ['an info signed as a status', appTopic, signed(KINDS.status, appInfo(1)), 'kind'],
    ['not an envelope', appTopic, Buffer.from('{"hello":1}'), 'malformed'],
    ['an info body that is not one', appTopic, signed(KINDS.info, { deviceId: DEV, seq: 1 }), 'schema'],
    ['an app value that is not an app', appTopic, signed(KINDS.info, appInfo(1, { name: 'x' })), 'schema'],
    ['an info about another object than its topic', topics.info(DEV, 'app', OTHER), signed(KINDS.info, appInfo(1)), 'topic-mismatch'],
  ];
  for (const [what, topic, payload, reason] of cases) t.match(ingest.handle(topic, payload), { accepted: false, reason }, what);
  t.equal(state.readInfo(DEV, 'app', APP), undefined, 'nothing stored');
  t.notOk(fs.existsSync(state.eventsPath(DEV)), 'nothing logged');
  t.same(ingest.counters.rejected, { signature: 1, 'device-mismatch': 1, 'unknown-device': 1, kind: 1, malformed: 1, schema: 2, 'topic-mismatch': 1 });
  t.equal(ingest.counters.accepted, 0);
  t.equal(ingest.counters.received, cases.length);
});

t.test('an older info (an old retained message) is dropped; the latest stays', async (t) => {
  const { state, ingest } = setup(t);
  ingest.handle(appTopic, signed(KINDS.info, appInfo(10, app('RUNNING'))));
  t.match(ingest.handle(appTopic, signed(KINDS.info, appInfo(7, app('HALTED')))), { accepted: false, reason: 'stale' });
  t.match(ingest.handle(appTopic, signed(KINDS.info, appInfo(10, app('RUNNING')))), { accepted: false, reason: 'duplicate' });
  t.equal(state.readInfo(DEV, 'app', APP)?.body.seq, 10);
  t.equal((state.readInfo(DEV, 'app', APP)?.body.value as AppInfo).state, 'RUNNING');
  t.same(ingest.handle(appTopic, signed(KINDS.info, appInfo(11, app('HALTED')))), { accepted: true });
  t.equal((state.readInfo(DEV, 'app', APP)?.body.value as AppInfo).state, 'HALTED');
  t.same(ingest.handle(appTopic, signed(KINDS.info, appInfo(12, undefined, { value: undefined, deleted: true }))), { accepted: true }, 'a deletion is stored too');
  t.match(ingest.handle(appTopic, signed(KINDS.info, appInfo(11, app('RUNNING')))), { accepted: false, reason: 'stale' }, 'and keeps older ones out');
  t.same(ingest.counters.rejected, { stale: 2, duplicate: 1 });
});

t.test('config info, status and metrics', async (t) => {
  const { state, ingest } = setup(t);
  const config: ConfigInfo = { source: 'controller', appliedVersion: '1', seq: 3, fieldErrors: [], unknownConfigItems: [] };
  t.same(ingest.handle(topics.info(DEV, 'config', 'global'), signed(KINDS.info, { deviceId: DEV, kind: 'config', id: 'global', seq: 1, time: TIME, value: config })), { accepted: true });
  t.equal((state.readInfo(DEV, 'config', 'global')?.body.value as ConfigInfo).seq, 3);

  const status = (over: Partial<StatusBody>): StatusBody => ({ deviceId: DEV, state: 'online', bootId: 'boot-2', time: '2026-05-06T07:10:00.000Z', ...over });
  t.same(ingest.handle(topics.status(DEV), signed(KINDS.status, status({}))), { accepted: true });
  const lateWill = status({ state: 'offline', reason: 'will', bootId: 'boot-1', time: '2026-05-06T07:00:00.000Z' });
  t.match(ingest.handle(topics.status(DEV), signed(KINDS.status, lateWill)), { accepted: false, reason: 'stale-status' }, 'the will of an older connection arriving late');
  t.equal(state.readStatus(DEV)?.body.state, 'online');
  t.same(ingest.handle(topics.status(DEV), signed(KINDS.status, status({ state: 'offline', reason: 'will', time: '2026-05-06T07:20:00.000Z' }))), { accepted: true });
  t.equal(state.readStatus(DEV)?.body.state, 'offline');

  const metrics: MetricsBody = { deviceId: DEV, seq: 1, time: TIME, intervalSeconds: 60, device: { cpuPercent: 12.5 }, apps: [] };
  t.same(ingest.handle(topics.metrics(DEV), signed(KINDS.metrics, metrics)), { accepted: true });
  t.match(ingest.handle(topics.metrics(DEV), signed(KINDS.metrics, { ...metrics, device: { cpuPercent: 'lots' } })), { accepted: false, reason: 'schema' });
  const types = fs.readFileSync(state.eventsPath(DEV), 'utf8').trim().split('\n').map((l) => JSON.parse(l).type);
  t.same(types, ['info', 'status', 'status', 'metrics']);
  t.match(ingest.handle('zedbox/v1/elsewhere', Buffer.from('x')), { accepted: false, reason: 'ignored' });
  t.equal(ingest.counters.ignored, 1);
});

t.test('the events log rotates to .1, keeping two files, and follow reads across it', async (t) => {
  const { state, ingest } = setup(t, 1000);
  let printed = '';
  const stop = new AbortController();
  const following = follow(state, 'SN-A', false, { out: (s) => (printed += s), err: () => {} }, stop.signal);
  for (let seq = 1; seq <= 8; seq++) {
    t.same(ingest.handle(appTopic, signed(KINDS.info, appInfo(seq, { ...app(), name: `name-${seq}` }))), { accepted: true });
    await waitUntil(() => printed.includes(`seq ${seq}  name-${seq} RUNNING`), `follow printed seq ${seq}`, 20_000);
  }
  stop.abort();
  await following;
  const files = fs.readdirSync(path.dirname(state.eventsPath(DEV)));
  t.same(files.sort(), [`${DEV}.ndjson`, `${DEV}.ndjson.1`]);
  for (const f of files) t.ok(fs.statSync(path.join(path.dirname(state.eventsPath(DEV)), f)).size <= 1000, `${f} within the limit`);
  const lines = (f: string) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l).body.seq as number);
  const kept = [...lines(`${state.eventsPath(DEV)}.1`), ...lines(state.eventsPath(DEV))];
  t.same(kept, kept.map((_, i) => 8 - kept.length + 1 + i), `the newest events, in order: ${kept.join(', ')}`);
  t.equal(printed.match(/ app\//g)?.length, 8, 'each event printed once');
});
