// logmanager's relay socket on a real disk: an ack tells a relay its lines survive
// a power cut, so it goes out only once they are synced (fdatasync of the collect
// file; watched here, not replaced); and lines a process left in the spool when it
// exited are taken when a relay connects, before that relay's own lines, so a
// restarted agent's old lines never come after its new ones.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { Intake } from '../../agents/logmanager/intake';
import { LogQueue } from '../../agents/logmanager/log-queue';
import { QueueStore } from '../../agents/logmanager/queue-store';
import { RelayServer } from '../../agents/logmanager/relay-server';
import { Logger } from '../../lib/log';
import { writeFileAtomicSync } from '../../lib/atomic-file';
import { LogBatchCollection, type LogBatch } from '../../pubsub/collections/logs';
import { Publication } from '../../pubsub/publication';
import { waitUntil } from '../lib/wait';

const WAIT_MS = 10_000; // a bound so a broken run ends, not a performance limit
const log = new Logger({ source: 'test', level: 'error', sink: { write: () => undefined } });
const line = (source: string, msg: string): string => JSON.stringify({ time: new Date().toISOString(), level: 'info', source, msg });

async function rig(t: Test, datasync?: typeof fs.fdatasync) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-lmrd-'));
  const store = new QueueStore(path.join(dir, 'lm'), { datasync });
  const publication = new Publication(LogBatchCollection, 'logmanager', { send: () => undefined }, log);
  const timers: NodeJS.Timeout[] = [];
  const queue = new LogQueue({ store, publication, log, setTimeout: (fn, ms) => { const h = setTimeout(fn, ms); timers.push(h); return h; } });
  queue.recover();
  const server = new RelayServer(path.join(dir, 'r.sock'), new Intake(queue, log, () => store.spoolFiles()), log);
  await server.start();
  t.teardown(async () => {
    await server.close();
    queue.stop();
    for (const h of timers) clearTimeout(h);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  /** The messages of everything closed so far, in seq order. */
  const messages = (): string[] => [...publication.getAll().values()].map((v) => v as LogBatch).sort((a, b) => a.seq - b.seq)
    .flatMap((b) => gunzipSync(Buffer.from(b.gzip, 'base64')).toString().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg));
  return { dir, store, queue, server, messages };
}

/** A relay's end of the socket: what it writes, and the acks it gets. */
async function relay(t: Test, socketPath: string, events?: string[]) {
  const s = net.createConnection(socketPath);
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  t.teardown(() => s.destroy());
  const acks: number[] = [];
  let carry = '';
  s.on('data', (c: Buffer) => {
    carry += c.toString();
    let nl: number;
    while ((nl = carry.indexOf('\n')) >= 0) {
      const msg = JSON.parse(carry.slice(0, nl)) as { ctl: string; records?: number };
      carry = carry.slice(nl + 1);
      if (msg.ctl === 'ack') {
        acks.push(msg.records as number);
        events?.push(`ack ${msg.records}`);
      }
    }
  });
  return { acks, send: (text: string) => s.write(text) };
}

t.test('a relay\'s lines are acknowledged only once the collect file is synced', async (t) => {
  const events: string[] = [];
  let release: (() => void) | undefined;
  let syncedBytes = -1;
  // The real fdatasync, the first one held until the test lets it run: nothing may be acked meanwhile.
  const datasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    if (release) return fs.fdatasync(fd, cb);
    events.push('sync');
    syncedBytes = fs.fstatSync(fd).size;
    release = () => fs.fdatasync(fd, (err) => { events.push('synced'); cb(err); });
  }) as typeof fs.fdatasync;
  const r = await rig(t, datasync);
  const rl = await relay(t, r.server.socketPath, events);
  const text = ['one', 'two', 'three'].map((m) => line('fixture', m)).join('\n') + '\n';
  rl.send(text);
  await waitUntil(() => release !== undefined, 'a sync of the collect file', WAIT_MS);
  t.same(events, ['sync'], 'no ack while the sync runs');
  t.ok(syncedBytes >= Buffer.byteLength(text), 'the lines were written before the sync began');
  release?.();
  await waitUntil(() => rl.acks.length > 0, 'the ack', WAIT_MS);
  t.same(events, ['sync', 'synced', 'ack 3'], 'then the ack, for all three');
});

t.test('acks of many chunks share syncs, and each chunk is acknowledged in order', async (t) => {
  let syncs = 0;
  const datasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => { syncs++; fs.fdatasync(fd, cb); }) as typeof fs.fdatasync;
  const r = await rig(t, datasync);
  const a = await relay(t, r.server.socketPath);
  const b = await relay(t, r.server.socketPath);
  for (let i = 1; i <= 50; i++) {
    a.send(`${line('a', `a${i}`)}\n`);
    b.send(`${line('b', `b${i}`)}\n`);
  }
  await waitUntil(() => a.acks.at(-1) === 50 && b.acks.at(-1) === 50, 'every line acknowledged', WAIT_MS);
  t.same(a.acks, [...a.acks].sort((x, y) => x - y), 'a relay\'s acks only grow');
  t.ok(syncs >= 1 && syncs <= a.acks.length + b.acks.length, `one sync serves one or more acks (${syncs} syncs, ${a.acks.length + b.acks.length} acks)`);
  r.queue.closeBatch();
  const got = r.messages();
  t.same(got.filter((m) => m.startsWith('a')), Array.from({ length: 50 }, (_, i) => `a${i + 1}`), 'every line once, in order');
  t.same(got.filter((m) => m.startsWith('b')), Array.from({ length: 50 }, (_, i) => `b${i + 1}`));
});

t.test('a spool file an exited process left is taken when a relay connects, before that relay\'s lines', async (t) => {
  const r = await rig(t);
  // The old process of an agent exited with lines logmanager had not taken (after logmanager's start scan).
  const spool = path.join(r.store.spoolDir, `${String(Date.now()).padStart(15, '0')}-4242.ndjson`);
  writeFileAtomicSync(spool, `${line('zedagent', 'old 1')}\n${line('zedagent', 'old 2')}\n`);
  // Its new process connects and logs.
  const rl = await relay(t, r.server.socketPath);
  rl.send(`${line('zedagent', 'new 1')}\n`);
  await waitUntil(() => rl.acks.includes(1), 'the new line acknowledged', WAIT_MS);
  r.queue.closeBatch();
  t.same(r.messages(), ['old 1', 'old 2', 'new 1'], 'the old process\'s lines first');
  t.notOk(fs.existsSync(spool), 'the spool file is gone once taken');
});
