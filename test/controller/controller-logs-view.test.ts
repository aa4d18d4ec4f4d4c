// What `zedctl logs` prints: lines in seq order, drops and missing batches at
// their place, the filters, --json, and --follow printing what is stored later.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import type { LogLine } from '../../api/logs';
import { newBoxKeyPair, newSignKeyPair } from '../../lib/keys';
import { LogStore, type StoredLogBatch } from '../../controller/log-store';
import { LogPrinter, followLogs, lineText, type LogFilter } from '../../controller/log-view';
import { zedctl, type ZedctlEnv } from '../../controller/main';
import { StateDir } from '../../controller/state-dir';
import { waitUntil } from '../lib/wait';

const DEV = 'aaaaaaaa-1111-4222-8333-444444444444';
const T0 = '2026-05-06T07:08:09.000Z';

const agent = (msg: string, over: Partial<LogLine> = {}): LogLine => ({ time: T0, source: 'zedagent', level: 'info', msg, ...over });
const app = (name: string, msg: string, over: Partial<LogLine> = {}): LogLine => ({ time: T0, source: 'app', level: 'info', msg, app: name, appId: `id-${name}`, stream: 'stdout', ...over });

function batch(seq: number, lines: LogLine[], over: Partial<StoredLogBatch> = {}): StoredLogBatch {
  const text = lines.map((l) => JSON.stringify(l) + '\n').join('');
  return {
    seq, firstAt: lines[0]?.time ?? T0, lastAt: lines.at(-1)?.time ?? T0, lines: lines.length, rawBytes: text.length,
    gzip: gzipSync(text).toString('base64'), receivedAt: T0, ...over,
  };
}

function print(batches: StoredLogBatch[], filter: LogFilter = {}, json = false): string[] {
  const out: string[] = [];
  const p = new LogPrinter(filter, json, (l) => out.push(l));
  for (const b of batches) p.batch(b);
  return out;
}

t.test('a line: time, source or app, level, message, then its fields compactly', async (t) => {
  t.equal(lineText(agent('connected to the controller broker', { fields: { url: 'mqtt://127.0.0.1:1883', sessionPresent: false, reason: 'two words' } })),
    `${T0} zedagent INFO connected to the controller broker url=mqtt://127.0.0.1:1883 sessionPresent=false reason="two words"`);
  t.equal(lineText(app('web', 'GET / 200')), `${T0} app/web INFO GET / 200`);
  t.equal(lineText(app('web', 'oops', { stream: 'stderr', level: 'error' })), `${T0} app/web ERROR oops stream=stderr`);
  t.equal(lineText(agent('two\nlines', { fields: { n: 3, o: { a: [1] } } })), `${T0} zedagent INFO two\\nlines n=3 o={"a":[1]}`, 'one output line per log line');
});

t.test('batches in order; drops and unexplained gaps marked at their place', async (t) => {
  const out = print([
    batch(1, [agent('one')]),
    batch(2, [agent('two')], { droppedBefore: { lines: 5, batches: 0, reason: 'zedagent buffer full while logmanager was away' } }),
    batch(5, [agent('five')]),
    batch(8, [agent('eight')], { droppedBefore: { lines: 40, batches: 2, reason: 'queue quota' } }),
    batch(11, [agent('eleven')], { droppedBefore: { lines: 10, batches: 1, reason: 'queue quota' } }),
  ]);
  t.same(out, [
    `${T0} zedagent INFO one`,
    '-- 5 lines dropped on the device (zedagent buffer full while logmanager was away) --',
    `${T0} zedagent INFO two`,
    '-- batches 3-4 missing --',
    `${T0} zedagent INFO five`,
    '-- 40 lines in 2 batches dropped on the device (queue quota) --',
    `${T0} zedagent INFO eight`,
    '-- batch 9 missing --',
    '-- 10 lines in 1 batch dropped on the device (queue quota) --',
    `${T0} zedagent INFO eleven`,
  ], 'seqs 6-7 are explained by the drop; of 9-10 only one is');
});

t.test('filters: app (name or id), source, level, since; markers stay', async (t) => {
  const later = '2026-05-06T08:00:00.000Z';
  const batches = [
    batch(1, [agent('boot'), app('web', 'listening'), app('db', 'ready'), agent('slow', { level: 'warn', source: 'downloader' })]),
    batch(3, [app('web', 'GET /', { time: later }), agent('bad', { level: 'error', time: later })], { droppedBefore: { lines: 2, batches: 0, reason: 'quota' } }),
  ];
  t.same(print(batches, { app: 'web' }), [
    `${T0} app/web INFO listening`, '-- batch 2 missing --', '-- 2 lines dropped on the device (quota) --', `${later} app/web INFO GET /`,
  ]);
  t.same(print(batches, { app: 'id-db' }).filter((l) => !l.startsWith('--')), [`${T0} app/db INFO ready`], 'by app id');
  t.same(print(batches, { source: 'downloader' }).filter((l) => !l.startsWith('--')), [`${T0} downloader WARN slow`]);
  t.same(print(batches, { level: 'warn' }).filter((l) => !l.startsWith('--')), [`${T0} downloader WARN slow`, `${later} zedagent ERROR bad`]);
  t.same(print(batches, { sinceMs: Date.parse(later) }), [
    '-- batch 2 missing --', '-- 2 lines dropped on the device (quota) --', `${later} app/web INFO GET /`, `${later} zedagent ERROR bad`,
  ], 'the batch before --since is skipped whole; the missing one after it may have held later lines, so it is reported');
});

t.test('--json: one JSON object a line, with its seq', async (t) => {
  const out = print([batch(1, [agent('one')]), batch(3, [app('web', 'x')], { droppedBefore: { lines: 1, batches: 0, reason: 'r' } })], {}, true).map((l) => JSON.parse(l));
  t.same(out, [
    { seq: 1, ...agent('one') },
    { missing: { from: 2, to: 2 } },
    { seq: 3, dropped: { lines: 1, batches: 0, reason: 'r' } },
    { seq: 3, ...app('web', 'x') },
  ]);
});

function storeIn(t: Test): { dir: string; store: LogStore } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedctl-logview-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, store: new LogStore(dir) };
}

function following(t: Test, store: LogStore, gapWaitMs: number): string[] {
  const out: string[] = [];
  const ac = new AbortController();
  const done = followLogs(store, DEV, new LogPrinter({}, false, (l) => out.push(l)), ac.signal, { gapWaitMs, pollMs: 100 });
  t.teardown(async () => {
    ac.abort();
    await done;
  });
  return out;
}

t.test('--follow prints batches as they are stored, waiting for a seq that comes late', async (t) => {
  const { store } = storeIn(t);
  const out = following(t, store, 60_000); // a bound so a broken run ends; the test does not wait for it
  store.store(DEV, batch(1, [agent('one')]));
  await waitUntil(() => out.length === 1, 'batch 1 printed (the folder did not exist when following began)');
  store.store(DEV, batch(3, [agent('three')]));
  store.store(DEV, batch(2, [agent('two')]));
  await waitUntil(() => out.length === 3, 'batches 2 and 3 printed');
  t.same(out, [`${T0} zedagent INFO one`, `${T0} zedagent INFO two`, `${T0} zedagent INFO three`], 'in seq order, no gap reported');
});

t.test('--follow moves past a seq that does not come, and prints it if it comes after all', async (t) => {
  const { store } = storeIn(t);
  store.store(DEV, batch(1, [agent('one')]));
  const out = following(t, store, 200);
  await waitUntil(() => out.length === 1, 'the stored batch');
  store.store(DEV, batch(3, [agent('three')]));
  await waitUntil(() => out.length === 3, 'batch 3 after the wait');
  t.same(out.slice(1), ['-- batch 2 missing --', `${T0} zedagent INFO three`]);
  store.store(DEV, batch(2, [agent('two')]));
  await waitUntil(() => out.length === 5, 'the late batch');
  t.same(out.slice(3), ['-- batch 2 arrived late --', `${T0} zedagent INFO two`]);
});

t.test('--follow moves past a huge gap at once (a device whose seqs jumped)', async (t) => {
  const { store } = storeIn(t);
  store.store(DEV, batch(5, [agent('five')]));
  const out = following(t, store, 100);
  store.store(DEV, batch(999_999_999_999, [agent('last')]));
  await waitUntil(() => out.length === 3, 'the batch after the gap', 5000);
  t.same(out.slice(1), ['-- batches 6-999999999998 missing --', `${T0} zedagent INFO last`]);
});

t.test('an app cannot drive the operator\'s terminal: control characters are shown, not sent', async (t) => {
  const evil = '\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2Jgone\x9b31m\ttab';
  const [line] = print([batch(1, [app(`web\x1b[8m`, evil, { fields: { k: 'a\x1bb' } })])]);
  t.equal(line, `${T0} app/web\\x1b[8m INFO \\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2Jgone\\x9b31m\ttab k=a\\x1bb`);
  t.notMatch(line, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/, 'no control character reaches the terminal (tab aside)');
});

t.test('zedctl logs reads the state dir', async (t) => {
  const { dir, store } = storeIn(t);
  const state = new StateDir(dir);
  state.init();
  state.writeDevice({ serial: 'SN-A', state: 'onboarded', deviceId: DEV, signPublicKey: newSignKeyPair().publicKey, boxPublicKey: newBoxKeyPair().publicKey, createdAt: T0 });
  state.writeDevice({ serial: 'SN-B', state: 'registered', createdAt: T0 });
  const cli = async (...args: string[]) => {
    let out = '';
    let err = '';
    const env: ZedctlEnv = { out: (s) => (out += s), err: (s) => (err += s) };
    return { code: await zedctl.main([...args, '--state', dir], env), out, err };
  };
  t.match(await cli('logs', 'SN-A'), { code: 0, out: '', err: /no logs stored for SN-A/ });
  store.store(DEV, batch(1, [agent('one'), app('web', 'hello')]));
  store.store(DEV, batch(2, [app('db', 'ready')]));
  t.same(await cli('logs', 'SN-A'), { code: 0, out: `${T0} zedagent INFO one\n${T0} app/web INFO hello\n${T0} app/db INFO ready\n`, err: '' });
  t.same((await cli('logs', DEV, '--app', 'web')).out, `${T0} app/web INFO hello\n`, 'by UUID, one app');
  t.same((await cli('logs', 'SN-A', '--json', '--source', 'zedagent')).out.trim().split('\n').map((l) => JSON.parse(l)), [{ seq: 1, ...agent('one') }]);
  t.match(await cli('logs', 'SN-A', '--level', 'loud'), { code: 2, err: /--level must be one of trace, debug, info, warn, error/ });
  t.match(await cli('logs', 'SN-A', '--since', 'yesterday'), { code: 2, err: /--since must be an RFC 3339 time/ });
  t.match(await cli('logs', 'SN-X'), { code: 1, err: /no device SN-X/ });
  t.match(await cli('logs', 'SN-B'), { code: 1, err: /SN-B is registered: it has no logs until it onboards/ });
  t.match(await cli('logs'), { code: 2, err: /usage: zedctl logs DEVICE/ });
  const followed = await cli('logs', 'SN-A', '--follow', '--app', 'db', '--duration-ms', '300');
  t.same(followed, { code: 0, out: `${T0} app/db INFO ready\n`, err: `following the logs of SN-A (${DEV}); stop with Ctrl-C\n` }, '--follow prints what is stored, then stops at --duration-ms');
  t.match(await cli('--help'), { code: 0, out: /zedctl logs DEVICE \[--app NAME\]/ });
  t.match(await cli('serve', '--log-retention-mib', '0'), { code: 2, err: /--log-retention-mib must be a positive number of MiB, not 0/ });
});
