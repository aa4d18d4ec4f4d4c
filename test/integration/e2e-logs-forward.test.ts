// Log batches from a real device's zedagent to the reference controller: the
// controller (`zedctl serve`'s code, embedded broker) runs in this process, the
// device's zedagent on a real bus through the agent harness, onboarded the real
// way; the test stands in for logmanager and publishes LogBatch values on the
// device's bus. `zedctl logs` runs as its own process on the controller's state
// dir, as an operator would run it beside `zedctl serve`.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import type { LogLine } from '../../api/logs';
import { zedagent } from '../../agents/zedagent/main';
import { Logger } from '../../lib/log';
import { registerDevice } from '../../controller/cli';
import { startController, type RunningController } from '../../controller/server';
import { StateDir } from '../../controller/state-dir';
import { LogBatchAckCollection, LogBatchCollection, logBatchKey, type LogBatch } from '../../pubsub/collections';
import { startAgents, freshDirs } from '../lib/agent-harness';
import { freePort } from '../lib/config-builder';
import { ROOT, run } from '../lib/proc';
import { waitUntil } from '../lib/wait';

const WAIT_MS = 30_000; // a bound so a broken run ends, not a performance limit
const SERIAL = `logs-${process.pid}`;

const agentLine = (msg: string, time: string): LogLine => ({ time, source: 'zedagent', level: 'info', msg, fields: { n: 1 } });
const appLine = (app: string, msg: string, time: string): LogLine => ({ time, source: 'app', level: 'info', msg, app, appId: `id-${app}`, stream: 'stdout' });

function logBatch(seq: number, lines: LogLine[], droppedBefore?: LogBatch['droppedBefore']): LogBatch {
  const text = lines.map((l) => JSON.stringify(l) + '\n').join('');
  return {
    seq, firstAt: lines[0]!.time, lastAt: lines.at(-1)!.time, lines: lines.length, rawBytes: Buffer.byteLength(text),
    gzip: gzipSync(text).toString('base64'), ...(droppedBefore ? { droppedBefore } : {}),
  };
}

/** `zedctl ...` as its own process, from the sources. */
function zedctl(args: string[]) {
  return run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'controller/main.ts'), ...args]);
}

t.test('log batches reach the controller, are stored once, acknowledged, and shown by zedctl logs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zlogs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const stateDir = path.join(dir, 'state');
  const port = await freePort();
  const ctlLog = new Logger({ source: 'zedctl', level: 'warn', format: 'text' });
  let ctl: RunningController | undefined = await startController({ stateDir, listen: { host: '127.0.0.1', port }, log: ctlLog });
  t.teardown(async () => { await ctl?.close(); });

  const provFile = path.join(dir, 'controller.json');
  registerDevice(new StateDir(stateDir), SERIAL, { mode: 'add', out: provFile }, { out: () => {}, err: () => {} });
  const dirs = freshDirs();
  fs.mkdirSync(dirs.config, { recursive: true });
  fs.copyFileSync(provFile, path.join(dirs.config, 'controller.json'));
  let h: Awaited<ReturnType<typeof startAgents>> | undefined;
  t.teardown(async () => {
    await h?.stop(); // the agents first, then their folders
    fs.rmSync(path.dirname(dirs.run), { recursive: true, force: true });
  });
  h = await startAgents([zedagent], { dirs });

  const state = new StateDir(stateDir);
  await waitUntil(() => state.readDevice(SERIAL)?.state === 'onboarded' && state.readStatus(state.readDevice(SERIAL)!.deviceId!)?.body.state === 'online',
    'the device onboarded and online', WAIT_MS);
  const uuid = state.readDevice(SERIAL)!.deviceId!;
  const logsDir = path.join(stateDir, 'logs', uuid);
  const stored = (): string[] => (fs.existsSync(logsDir) ? fs.readdirSync(logsDir).sort() : []);

  const batches = await h.publisher(LogBatchCollection);
  const acks = h.watch(LogBatchAckCollection);
  const t1 = '2026-05-06T07:00:00.000Z';
  const t2 = '2026-05-06T07:00:01.000Z';
  const first = [
    logBatch(1, [agentLine('zedagent starting', t1), appLine('web', 'listening on 8080', t1)]),
    logBatch(2, [appLine('db', 'ready', t2), appLine('web', 'GET / 200', t2)]),
    logBatch(3, [agentLine('config applied', t2)]),
  ];

  await t.test('batches go up, are stored and acknowledged; zedctl logs prints their lines in order', async (t) => {
    for (const b of first) batches.publish(logBatchKey(b.seq), b);
    for (const b of first) {
      await h.waitFor(LogBatchAckCollection, logBatchKey(b.seq), (v) => v?.seq === b.seq, `LogBatchAck ${b.seq}`, WAIT_MS);
    }
    t.same(stored(), ['000000000001.json', '000000000002.json', '000000000003.json'], 'one file per batch');
    t.match(acks.get(logBatchKey(1)), { seq: 1, storedAt: String });
    const r = await zedctl(['logs', SERIAL, '--state', stateDir]);
    t.equal(r.code, 0, r.err);
    t.equal(r.out, [
      `${t1} zedagent INFO zedagent starting n=1`,
      `${t1} app/web INFO listening on 8080`,
      `${t2} app/db INFO ready`,
      `${t2} app/web INFO GET / 200`,
      `${t2} zedagent INFO config applied n=1`,
    ].join('\n') + '\n');
    const web = await zedctl(['logs', uuid, '--app', 'web', '--state', stateDir]);
    t.equal(web.out, `${t1} app/web INFO listening on 8080\n${t2} app/web INFO GET / 200\n`, '--app filters');
    t.match(ctl!.counters().logs, { stored: 3, rejected: {} });
  });

  await t.test('a batch withdrawn by logmanager takes its LogBatchAck with it', async (t) => {
    for (const b of first) batches.unpublish(logBatchKey(b.seq));
    await waitUntil(() => acks.keys().length === 0, 'every LogBatchAck withdrawn', WAIT_MS);
    t.same(acks.keys(), []);
    t.equal(stored().length, 3, 'the controller keeps what it stored');
  });

  await t.test('with the controller stopped, batches wait; after it comes back each is stored once', async (t) => {
    await ctl!.close();
    ctl = undefined;
    const t3 = '2026-05-06T07:05:00.000Z';
    const later = [
      logBatch(4, [agentLine('the controller is away', t3)]),
      logBatch(6, [appLine('web', 'still serving', t3)], { lines: 12, batches: 1, reason: 'queue quota' }),
    ];
    for (const b of later) batches.publish(logBatchKey(b.seq), b);
    await new Promise((r) => setTimeout(r, 1000)); // let them sit while the broker is down
    t.same(acks.keys(), [], 'no batch is acknowledged while the controller is away');
    ctl = await startController({ stateDir, listen: { host: '127.0.0.1', port }, log: ctlLog });
    // Usually the device reconnects after the controller has subscribed; if it comes first, the embedded
    // broker has no subscriber for what it sends then, and the batches go again after the 30 s resend.
    for (const b of later) {
      await h.waitFor(LogBatchAckCollection, logBatchKey(b.seq), (v) => v?.seq === b.seq, `LogBatchAck ${b.seq} after the restart`, WAIT_MS + 35_000);
    }
    t.same(stored(), ['000000000001.json', '000000000002.json', '000000000003.json', '000000000004.json', '000000000006.json']);
    t.equal(ctl.counters().logs.stored, 2, 'each stored once by the restarted controller');
    const r = await zedctl(['logs', SERIAL, '--state', stateDir, '--since', t3]);
    t.equal(r.out, [
      `${t3} zedagent INFO the controller is away n=1`,
      '-- 12 lines in 1 batch dropped on the device (queue quota) --',
      `${t3} app/web INFO still serving`,
    ].join('\n') + '\n', 'the drop is shown at its place');
  });

  await t.test('zedctl logs --follow prints a batch stored after it started', async (t) => {
    const follower = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'controller/main.ts'), 'logs', SERIAL, '--follow', '--app', 'web', '--state', stateDir],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    follower.stdout.on('data', (c: Buffer) => (out += c.toString()));
    follower.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<void>((resolve) => follower.on('exit', () => resolve()));
    t.teardown(async () => {
      if (follower.exitCode === null) follower.kill('SIGTERM');
      await exited;
    });
    await waitUntil(() => err.includes('following the logs of'), 'zedctl logs --follow started', WAIT_MS);
    await waitUntil(() => out.includes('still serving'), 'what was stored before is printed', WAIT_MS);
    const t4 = '2026-05-06T07:10:00.000Z';
    batches.publish(logBatchKey(7), logBatch(7, [agentLine('not web', t4), appLine('web', 'a new request', t4)]));
    await waitUntil(() => out.includes('a new request'), 'the new batch printed', WAIT_MS);
    follower.kill('SIGTERM');
    await exited;
    t.equal(out.trim().split('\n').at(-1), `${t4} app/web INFO a new request`, 'only the app\'s line of it');
    t.notOk(out.includes('not web'));
  });
});
