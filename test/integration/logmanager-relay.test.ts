// Agents' lines from another process: a fixture whose Logger relays (as every
// zedbox process does) logs through <run>/logmanager.sock; its lines reach the
// "controller" tagged with their source. While logmanager is away the relay keeps
// a bounded buffer and counts what it drops; lines left at exit are spooled and
// taken at logmanager's next start. Remote levels: agent.<name>.remote.loglevel
// keeps lines back (counted as filtered) or brings debug lines the local log
// (stderr, at info) never shows.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import t from 'tap';
import type { Dirs } from '../../lib/dirs';
import { RELAY_DROP_REASON } from '../../lib/log-relay';
import { LogManagerStatusCollection } from '../../pubsub/collections/logs';
import { ROOT } from '../lib/proc';
import { waitUntil } from '../lib/wait';
import { removeDirs, startLogmanager } from '../lib/logmanager-helpers';

const WAIT_MS = 30_000; // a bound so a broken run ends, not a performance limit

class Fixture {
  readonly child: ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly exited: Promise<void>;

  constructor(dirs: Dirs, source: string, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/fixtures/relay-logger.ts'), dirs.run, dirs.persist, source], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    const collect = (stream: NodeJS.ReadableStream, into: string[]): void => {
      let buf = '';
      stream.on('data', (c: Buffer) => {
        buf += c.toString();
        const parts = buf.split('\n');
        buf = parts.pop() ?? '';
        into.push(...parts);
      });
    };
    collect(this.child.stdout as NodeJS.ReadableStream, this.out);
    collect(this.child.stderr as NodeJS.ReadableStream, this.err);
    this.exited = new Promise((resolve) => this.child.on('exit', () => resolve()));
  }

  send(cmd: object): void {
    this.child.stdin?.write(JSON.stringify(cmd) + '\n');
  }

  async emit(level: string, count: number, prefix: string): Promise<void> {
    const before = this.out.filter((l) => l.startsWith('emitted')).length;
    this.send({ cmd: 'emit', level, count, prefix });
    await waitUntil(() => this.out.filter((l) => l.startsWith('emitted')).length > before, `the fixture logged ${prefix}`, WAIT_MS);
  }

  async waitOut(pred: (l: string) => boolean, what: string): Promise<void> {
    await waitUntil(() => this.out.some(pred), what, WAIT_MS);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

t.test('lines from another process arrive tagged with their source, in order', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  const fx = new Fixture(rig.h.dirs, 'fixtureb');
  t.teardown(() => fx.kill());
  await fx.waitOut((l) => l === 'ready', 'the fixture started');
  await fx.emit('info', 200, 'hello');
  await fx.emit('error', 1, 'broken');
  await waitUntil(() => rig.standIn.lines().filter((l) => l.source === 'fixtureb').length >= 201, 'the fixture\'s lines', WAIT_MS);
  const mine = rig.standIn.lines().filter((l) => l.source === 'fixtureb');
  t.equal(mine.length, 201, 'each line once');
  t.same(mine.map((l) => l.msg), [...Array.from({ length: 200 }, (_, i) => `hello ${i + 1}`), 'broken 1'], 'in order');
  t.same(mine.map((l) => l.level), [...Array(200).fill('info'), 'error'], 'levels kept');
  t.same(mine[0]?.fields, { pid: fx.child.pid, i: 1 }, 'its pid and own fields under fields');
  t.ok(mine.every((l) => !l.app && !l.stream), 'not app output');
  t.equal(fx.err.filter((l) => l.includes('"source":"fixtureb"')).length, 201, 'and the same lines on its stderr (the local log)');
});

t.test('while logmanager is away: the relay keeps what fits, counts what it drops, and spools at exit', async (t) => {
  let rig = await startLogmanager({ items: { 'timer.log.batch': '0.2' } });
  const dirs = rig.h.dirs;
  t.teardown(async () => { await rig.stop(); removeDirs(dirs); });
  const fx = new Fixture(dirs, 'fixturec', { RELAY_MAX_LINES: '100' });
  t.teardown(() => fx.kill());
  await fx.waitOut((l) => l.startsWith('levels'), 'the fixture connected');
  await fx.emit('info', 10, 'before');
  await waitUntil(() => rig.standIn.lines().filter((l) => l.source === 'fixturec').length >= 10, 'the first lines', WAIT_MS);

  await rig.stop();
  await fx.emit('info', 250, 'away');
  rig = await startLogmanager({ dirs, items: { 'timer.log.batch': '0.2' } });
  await waitUntil(() => rig.standIn.lines().filter((l) => l.msg === 'away 250').length === 1, 'the buffered lines after the restart', WAIT_MS);
  const got = [...rig.standIn.received.values()];
  const away = rig.standIn.lines().filter((l) => l.msg.startsWith('away'));
  t.same(away.map((l) => l.msg), Array.from({ length: 100 }, (_, i) => `away ${i + 151}`), 'the newest 100 kept, in order');
  const dropped = got.map((r) => r.batch.droppedBefore).filter(Boolean);
  t.same(dropped, [{ lines: 150, batches: 0, reason: RELAY_DROP_REASON }], 'the 150 dropped, counted once, with the reason');
  await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => s?.droppedLines === 150, 'status counts them');

  // Lines it could not hand over before it exits go to the spool, and arrive with the next start.
  await rig.stop();
  await fx.emit('warn', 30, 'last words');
  fx.send({ cmd: 'exit' });
  await fx.exited;
  rig = await startLogmanager({ dirs, items: { 'timer.log.batch': '0.2' } });
  await waitUntil(() => rig.standIn.lines().filter((l) => l.msg.startsWith('last words')).length >= 30, 'the spooled lines', WAIT_MS);
  t.same(rig.standIn.lines().filter((l) => l.msg.startsWith('last words')).map((l) => l.msg),
    Array.from({ length: 30 }, (_, i) => `last words ${i + 1}`), 'spooled lines, once, in order');
});

t.test('remote levels per agent: warn keeps info back (counted), debug brings debug lines while stderr stays at info', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2', 'agent.fixturee.remote.loglevel': 'warn' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  const fx = new Fixture(rig.h.dirs, 'fixturee');
  t.teardown(() => fx.kill());
  await fx.waitOut((l) => l.startsWith('levels') && l.includes('"fixturee":"warn"'), 'the relay got warn for fixturee');
  await fx.emit('info', 10, 'chatter');
  await fx.emit('warn', 3, 'careful');
  await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => s?.filteredLines === 10, 'the 10 info lines counted as filtered', WAIT_MS);
  await waitUntil(() => rig.standIn.lines().filter((l) => l.source === 'fixturee').length >= 3, 'the warnings', WAIT_MS);
  t.same(rig.standIn.lines().filter((l) => l.source === 'fixturee').map((l) => l.msg), ['careful 1', 'careful 2', 'careful 3'], 'only the warnings went');
  t.equal(fx.err.filter((l) => l.includes('chatter')).length, 10, 'the info lines are in the local log');

  rig.setItems({ 'timer.log.batch': '0.2', 'agent.fixturee.remote.loglevel': 'debug' });
  await fx.waitOut((l) => l.includes('"fixturee":"debug"'), 'the relay got debug for fixturee');
  await fx.emit('debug', 5, 'detail');
  await waitUntil(() => rig.standIn.lines().filter((l) => l.msg.startsWith('detail')).length >= 5, 'the debug lines', WAIT_MS);
  t.same(rig.standIn.lines().filter((l) => l.msg.startsWith('detail')).map((l) => [l.level, l.msg]),
    Array.from({ length: 5 }, (_, i) => ['debug', `detail ${i + 1}`]), 'debug lines reach the controller');
  t.notOk(fx.err.some((l) => l.includes('detail')), 'but not the local log (stderr stays at info)');
  t.equal(fx.err.filter((l) => l.includes('chatter')).length, 10, 'no new local lines either');
});
