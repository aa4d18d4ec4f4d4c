// The relay as zedbox wires it: `zedbox all` (from the sources, logmanager among
// its agents) relays its own lines to the logmanager in the same process; the test
// is zedagent on the same bus. The lines it logs while stopping, after logmanager
// stopped, are spooled at exit and reach the controller after the next start, once.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import type { LogLine } from '../../api/logs';
import { Logger } from '../../lib/log';
import { Bus } from '../../pubsub/bus';
import { ConfigItemValueMapCollection } from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { LogBatchAckCollection } from '../../pubsub/collections/logs';
import { freshDirs } from '../lib/agent-harness';
import { StandIn, removeDirs } from '../lib/logmanager-helpers';
import { ROOT } from '../lib/proc';
import { waitUntil } from '../lib/wait';

const WAIT_MS = 60_000; // a bound so a broken run ends, not a performance limit

t.test('zedbox relays its agents\' lines to logmanager, and spools its last ones', async (t) => {
  const dirs = freshDirs();
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const quiet = new Logger({ source: 'test', level: 'error', sink: { write: () => undefined } });
  const bus = new Bus({ runDir: dirs.run, persistDir: dirs.persist, log: quiet });
  const zedagent = await bus.endpoint('zedagent');
  zedagent.publication(ConfigItemValueMapCollection).publish('global', { items: { ...defaultConfigItems(), 'timer.log.batch': '0.2' } });
  const standIn = new StandIn(zedagent.publication(LogBatchAckCollection), bus);
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    for (const p of procs) p.kill('SIGKILL');
    standIn.close();
    await bus.close();
    removeDirs(dirs);
  });
  const zedbox = (): ChildProcess => {
    const p = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'zedbox/main.ts'), 'all', '--only', 'logmanager,ledmanager',
      '--run-dir', dirs.run, '--persist-dir', dirs.persist, '--config-dir', dirs.config], { cwd: ROOT, stdio: ['ignore', 'ignore', 'ignore'] });
    procs.push(p);
    return p;
  };
  const from = (pid: number | undefined, msg: string): LogLine[] => standIn.lines().filter((l) => l.fields?.pid === pid && l.msg === msg);

  const first = zedbox();
  await waitUntil(() => from(first.pid, 'all agents ready').length > 0 && from(first.pid, 'collecting logs').length > 0, 'its start-up lines', WAIT_MS);
  const ready = from(first.pid, 'all agents ready')[0];
  t.equal(ready?.source, 'zedbox', 'the supervisor\'s line, tagged zedbox');
  t.equal(from(first.pid, 'collecting logs')[0]?.source, 'logmanager', 'an agent\'s line, tagged with the agent');

  const exited = new Promise<number | null>((resolve) => first.on('exit', (code) => resolve(code)));
  first.kill('SIGTERM');
  t.equal(await exited, 0, 'a clean stop');
  const spool = path.join(dirs.persist, 'logmanager/spool');
  t.ok(fs.readdirSync(spool).length > 0, 'lines logged after logmanager stopped were spooled');

  const second = zedbox();
  await waitUntil(() => from(first.pid, 'all agents stopped').length > 0, 'the first run\'s last lines, after the second start', WAIT_MS);
  t.equal(from(first.pid, 'stopping').length, 1, 'its "stopping" line, once');
  t.equal(from(first.pid, 'all agents stopped').length, 1, 'its last line, once');
  t.equal(from(first.pid, 'all agents ready').length, 1, 'nothing of it repeated');
  await waitUntil(() => from(second.pid, 'all agents ready').length > 0, 'the second run\'s own lines', WAIT_MS);
  t.same(fs.readdirSync(spool), [], 'the spool was taken');
  const stopped = new Promise((resolve) => second.on('exit', resolve));
  second.kill('SIGTERM');
  await stopped;
});
