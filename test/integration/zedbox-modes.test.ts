// One-process mode and agents run alone meet on one bus; liveness; clean stop;
// an endpoint is never bound twice; a freed agent is taken over.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { BIN, ZEDBOX, jsonLine, msgIs, run, start, tempDirs } from '../lib/proc';

const AGENTS = ['nim', 'downloader', 'verifier', 'volumemgr', 'zedmanager', 'domainmgr', 'zedagent', 'logmanager', 'ledmanager'];

async function list(flags: string[]): Promise<Array<{ owner: string; pid: number; type: string; keys: number }>> {
  const r = await run(BIN('ipcmonitor'), ['list', '--json', ...flags]);
  return r.out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { owner: string; pid: number; type: string; keys: number });
}

t.test('zedbox all: every agent on the bus, alive, and stopped cleanly by SIGTERM', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const box = start(ZEDBOX, [...dirs.flags, '--touch-interval-ms', '200']);
  t.teardown(() => { box.child.kill('SIGKILL'); });
  const ready = jsonLine(await box.waitFor(msgIs('all agents ready'), 'ready')) as { running: string[] };
  t.same([...ready.running].sort(), [...AGENTS].sort(), 'all nine agents running');

  const all = await list(dirs.flags.slice(0, 2));
  const pubs = all.filter((p) => p.type === 'AgentStatus');
  t.same(pubs.map((p) => p.owner).sort(), [...AGENTS].sort(), 'ipcmonitor lists each agent');
  t.ok(pubs.every((p) => p.pid === box.child.pid && p.keys === 1), 'one process, one AgentStatus each');
  t.ok(all.every((p) => p.pid === box.child.pid), 'every publication is this process');

  const touch = path.join(dirs.run, 'nim.touch');
  const first = fs.statSync(touch).mtimeMs;
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error('nim.touch was not refreshed')), 10_000);
    const poll = setInterval(() => {
      if (fs.statSync(touch).mtimeMs > first) {
        clearInterval(poll);
        clearTimeout(deadline);
        resolve();
      }
    }, 50);
  });
  for (const a of AGENTS) t.ok(fs.existsSync(path.join(dirs.run, `${a}.touch`)), `${a}.touch exists`);
  t.ok(fs.existsSync(path.join(dirs.run, 'zedbox.pid')), 'pid file written');
  t.equal(fs.statSync(path.join(dirs.run, 'bus')).mode & 0o777, 0o700, 'bus sockets reachable by their owner only');

  box.child.kill('SIGTERM');
  const exit = await box.exited;
  t.equal(exit.code, 0, 'exit 0 after SIGTERM');
  t.ok(box.lines.some(msgIs('all agents stopped')), 'reports the stop');
  t.notOk(fs.existsSync(path.join(dirs.run, 'zedbox.pid')), 'pid file removed');
});

t.test('an agent run alone joins the bus of zedbox all; it cannot run twice', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const box = start(ZEDBOX, ['all', '--except', 'zedagent', ...dirs.flags]);
  t.teardown(() => { box.child.kill('SIGKILL'); });
  await box.waitFor(msgIs('all agents ready'), 'zedbox ready');
  const alone = start(BIN('zedagent'), dirs.flags);
  t.teardown(() => { alone.child.kill('SIGKILL'); });
  await alone.waitFor(msgIs('all agents ready'), 'zedagent ready');

  const pubs = await list(dirs.flags.slice(0, 2));
  t.equal(pubs.find((p) => p.owner === 'zedagent')?.pid, alone.child.pid, 'zedagent in its own process');
  t.equal(pubs.find((p) => p.owner === 'nim')?.pid, box.child.pid, 'nim in the shared one');

  const twice = await run(BIN('zedagent'), dirs.flags);
  t.equal(twice.code, 1, 'a second zedagent is refused');
  t.match(twice.err, `owned by live process ${alone.child.pid}`, 'the error names the live holder');
  t.match(twice.err, 'refusing to bind it twice');
  t.equal(alone.child.exitCode, null, 'the first zedagent is untouched');
});

t.test('zedbox all takes over an agent whose own process died', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const alone = start(BIN('zedagent'), dirs.flags);
  t.teardown(() => { alone.child.kill('SIGKILL'); });
  await alone.waitFor(msgIs('all agents ready'), 'zedagent ready');
  const box = start(ZEDBOX, [...dirs.flags, '--takeover-retry-ms', '200']);
  t.teardown(() => { box.child.kill('SIGKILL'); });
  const ready = jsonLine(await box.waitFor(msgIs('all agents ready'), 'zedbox ready')) as { elsewhere: string[] };
  t.same(ready.elsewhere, ['zedagent'], 'zedagent left to its own process');
  t.ok(box.lines.some((l) => jsonLine(l)?.msg === 'agent runs in another process; will take over if it stops'));

  alone.child.kill('SIGKILL');
  await alone.exited;
  const watch = start(BIN('ipcmonitor'), ['watch', 'zedagent/AgentStatus', '--json', ...dirs.flags.slice(0, 2)]);
  t.teardown(() => { watch.child.kill('SIGKILL'); });
  await watch.waitFor((l) => (jsonLine(l)?.value as { pid?: number } | undefined)?.pid === box.child.pid, 'zedagent taken over');
  t.pass('zedbox all now runs zedagent');
});
