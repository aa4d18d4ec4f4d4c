// Log batches into the controller: only a batch signed by the device its topic
// names, about itself, in shape, whose gzip holds log lines within a bound, is
// stored (once per seq) and acknowledged with a signed log-ack.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { openEnvelope, seal } from '../../api/envelope';
import type { LogLine } from '../../api/logs';
import { KINDS, type LogAckBody, type LogsBody } from '../../api/messages';
import { topics } from '../../api/topics';
import { keyId, newBoxKeyPair, newSignKeyPair, signerFor, verifierFor, type SignKeyPair } from '../../lib/keys';
import { Logger } from '../../lib/log';
import { LogIngest } from '../../controller/log-ingest';
import { LogStore } from '../../controller/log-store';
import { StateDir } from '../../controller/state-dir';
import { waitUntil } from '../lib/wait';

const DEV = 'aaaaaaaa-1111-4222-8333-444444444444';
const OTHER = 'bbbbbbbb-1111-4222-8333-444444444444';
const TIME = '2026-05-06T07:08:09.000Z';
const deviceKeys = newSignKeyPair();

const line = (msg: string, over: Partial<LogLine> = {}): LogLine => ({ time: TIME, source: 'zedagent', level: 'info', msg, ...over });
const gz = (text: string | Buffer): string => gzipSync(text).toString('base64');
const ndjson = (lines: LogLine[]): string => lines.map((l) => JSON.stringify(l) + '\n').join('');

function batch(seq: number, over: Partial<LogsBody> = {}, lines: LogLine[] = [line(`line of batch ${seq}`)]): LogsBody {
  const text = ndjson(lines);
  return { deviceId: DEV, seq, firstAt: TIME, lastAt: TIME, lines: lines.length, rawBytes: Buffer.byteLength(text), gzip: gz(text), ...over };
}

const signed = (body: unknown, keys: SignKeyPair = deviceKeys, kind: string = KINDS.logs): Buffer => seal(kind, body, signerFor(keys), keyId(keys.publicKey));

function setup(t: Test, opts: { failPublish?: () => boolean; stateDir?: string; replica?: string } = {}) {
  const dir = opts.stateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'zedctl-logs-'));
  if (!opts.stateDir) t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const state = new StateDir(dir);
  state.init();
  state.writeDevice({
    serial: 'SN-A', state: 'onboarded', deviceId: DEV, signPublicKey: deviceKeys.publicKey,
    boxPublicKey: newBoxKeyPair().publicKey, brokerUsername: DEV, createdAt: TIME, onboardedAt: TIME,
  });
  const keys = state.ensureKeys();
  const store = new LogStore(dir);
  const acks: { topic: string; body: LogAckBody }[] = [];
  const logLines: string[] = [];
  const ingest = new LogIngest({
    state, store, keys, coalesceMs: 5, log: new Logger({ source: 'test', sink: { write: (l) => logLines.push(l) } }),
    ...(opts.replica ? { replica: opts.replica } : {}),
    publish: async (topic, payload) => {
      if (opts.failPublish?.()) throw new Error('broker gone');
      const opened = openEnvelope(payload, KINDS.logAck, verifierFor(keys.sign.publicKey));
      if (!opened.ok) throw new Error(`the controller's own ack does not verify: ${opened.error}`);
      acks.push({ topic, body: opened.body as LogAckBody });
    },
  });
  return { dir, state, store, ingest, acks, logLines };
}

const TOPIC = topics.logs(DEV);

t.test('a good batch is stored durably and acknowledged, signed by the controller', async (t) => {
  const { store, ingest, acks, dir } = setup(t);
  t.same(ingest.handle(TOPIC, signed(batch(1))), { accepted: true, stored: true });
  const file = path.join(dir, 'logs', DEV, '000000000001.json');
  t.ok(fs.existsSync(file), 'stored as logs/<uuid>/<seq12>.json');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'private');
  t.match(store.read(DEV, 1), { seq: 1, lines: 1, gzip: batch(1).gzip, receivedAt: String });
  t.notOk('deviceId' in store.read(DEV, 1)!, 'the device is the folder, not repeated');
  await waitUntil(() => acks.length === 1, 'the ack');
  t.equal(acks[0]!.topic, topics.logAck(DEV));
  t.match(acks[0]!.body, { deviceId: DEV, seqs: [1], time: String });
  t.match(ingest.counters, { received: 1, stored: 1, duplicates: 0, acked: 1, rejected: {} });
});

t.test('a repeat is acknowledged again and not stored twice; acks coalesce per device', async (t) => {
  const { ingest, acks, dir } = setup(t);
  ingest.handle(TOPIC, signed(batch(1)));
  await waitUntil(() => acks.length === 1, 'first ack');
  const file = path.join(dir, 'logs', DEV, '000000000001.json');
  const before = fs.statSync(file);
  // The resend carries other bytes (a device bug or an attacker replaying an old seq): the first copy stays.
  t.same(ingest.handle(TOPIC, signed(batch(1, {}, [line('changed')]))), { accepted: true, stored: false });
  await waitUntil(() => acks.length === 2, 'the repeat acknowledged again');
  t.same(acks[1]!.body.seqs, [1]);
  const after = fs.statSync(file);
  t.same([after.ino, after.mtimeMs, after.size], [before.ino, before.mtimeMs, before.size], 'the stored file is untouched');
  for (const seq of [4, 2, 3]) ingest.handle(TOPIC, signed(batch(seq)));
  await waitUntil(() => acks.length === 3, 'one ack for the three');
  t.same(acks[2]!.body.seqs, [2, 3, 4], 'in seq order, in one message');
  t.match(ingest.counters, { received: 5, stored: 4, duplicates: 1, acked: 5 });
});

t.test('bad batches are each rejected with their reason, neither stored nor acknowledged', async (t) => {
  const { store, ingest, acks, logLines } = setup(t);
  const bomb = gzipSync(Buffer.alloc(17 * 1024 * 1024, 'a')).toString('base64');
  const cases: Array<[string, string, Buffer, string]> = [
    ['forged signature', TOPIC, signed(batch(1), newSignKeyPair()), 'signature'],
    ['body names another device', TOPIC, signed(batch(2, { deviceId: OTHER })), 'device-mismatch'],
    ['a device nobody onboarded', topics.logs(OTHER), signed(batch(3, { deviceId: OTHER })), 'unknown-device'],
    ['a batch signed as an info', TOPIC, signed(batch(4), deviceKeys, KINDS.info), 'kind'],
    ['not an envelope', TOPIC, Buffer.from('{"seq":5}'), 'malformed'],
    ['seq 0', TOPIC, signed(batch(0)), 'schema'],
    ['a seq past 12 digits (its file would not sort or be listed)', TOPIC, signed(batch(1e12)), 'schema'],
    ['gzip that is not gzip', TOPIC, signed(batch(6, { gzip: randomBytes(300).toString('base64') })), 'bad-gzip'],
    ['gzip that is not base64', TOPIC, signed(batch(7, { gzip: 'not base64!' })), 'bad-gzip'],
    ['a zip bomb (17 MiB of one letter, 17 KB compressed)', TOPIC, signed(batch(8, { gzip: bomb })), 'too-large'],
    ['a line without a level', TOPIC, signed(batch(9, { gzip: gz('{"time":"x","source":"a","msg":"m"}\n') })), 'bad-line'],
    ['a line that is not JSON', TOPIC, signed(batch(10, { gzip: gz(`${JSON.stringify(line('ok'))}\n{oops\n`) })), 'bad-line'],
  ];
  for (const [what, topic, payload, reason] of cases) t.match(ingest.handle(topic, payload), { accepted: false, reason }, what);
  t.match(ingest.handle(TOPIC, signed(batch(10, { gzip: gz(`${JSON.stringify(line('ok'))}\n{oops\n`) }))), { error: /line 2 is not JSON/ }, 'the error names the line');
  await ingest.flush();
  t.same(store.seqs(DEV), [], 'nothing stored');
  t.same(store.seqs(OTHER), []);
  t.same(acks, [], 'nothing acknowledged');
  t.same(ingest.counters.rejected, {
    signature: 1, 'device-mismatch': 1, 'unknown-device': 1, kind: 1, malformed: 1, schema: 2, 'bad-gzip': 2, 'too-large': 1, 'bad-line': 3,
  });
  t.equal(ingest.counters.stored, 0);
  t.ok(logLines.some((l) => l.includes('log batch rejected') && l.includes('too-large')), 'rejections are logged with the reason');
});

t.test('a batch that cannot be stored is not acknowledged; the resend is, once stored', async (t) => {
  const { ingest, acks, dir, store } = setup(t);
  fs.writeFileSync(path.join(dir, 'logs'), 'in the way'); // the logs folder cannot be made: every write fails
  t.match(ingest.handle(TOPIC, signed(batch(1))), { accepted: false, reason: 'store-failed', error: /batch 1:/ });
  await ingest.flush();
  t.same(acks, [], 'no ack for what is not on disk');
  fs.rmSync(path.join(dir, 'logs'));
  t.same(ingest.handle(TOPIC, signed(batch(1))), { accepted: true, stored: true });
  await waitUntil(() => acks.length === 1, 'ack of the resend');
  t.same(store.seqs(DEV), [1]);
});

t.test('an ack that cannot be published is counted; the device\'s resend is acknowledged', async (t) => {
  let fail = true;
  const { ingest, acks } = setup(t, { failPublish: () => fail });
  ingest.handle(TOPIC, signed(batch(1)));
  await waitUntil(() => ingest.counters.ackFailures === 1, 'the failed ack');
  fail = false;
  t.same(ingest.handle(TOPIC, signed(batch(1))), { accepted: true, stored: false });
  await waitUntil(() => acks.length === 1, 'the second ack');
  t.same(acks[0]!.body.seqs, [1]);
});

t.test('two replicas sharing the state dir store a seq once and both acknowledge it', async (t) => {
  const a = setup(t, { replica: 'a' });
  const b = setup(t, { stateDir: a.dir, replica: 'b' });
  t.same(a.ingest.handle(TOPIC, signed(batch(7))), { accepted: true, stored: true });
  t.same(b.ingest.handle(TOPIC, signed(batch(7))), { accepted: true, stored: false });
  await waitUntil(() => a.acks.length === 1 && b.acks.length === 1, 'both acks');
  t.equal(a.store.read(DEV, 7)?.replica, 'a', 'the first replica\'s copy is kept');
  t.same(fs.readdirSync(path.join(a.dir, 'logs', DEV)), ['000000000007.json'], 'one file, no temporary left');
});
