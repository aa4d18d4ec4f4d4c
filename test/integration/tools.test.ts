// ipcmonitor and diag as a person at the device uses them, against a running zedbox.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { BIN, ZEDBOX, msgIs, run, start, tempDirs } from '../lib/proc';

t.test('ipcmonitor and diag against zedbox running two agents', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const box = start(ZEDBOX, ['all', '--only', 'nim,zedagent', ...dirs.flags]);
  t.teardown(() => { box.child.kill('SIGKILL'); });
  await box.waitFor(msgIs('all agents ready'), 'ready');
  const runDir = ['--run-dir', dirs.run];

  const table = await run(BIN('ipcmonitor'), ['list', ...runDir]);
  t.equal(table.code, 0);
  const rows = table.out.trim().split('\n');
  t.match(rows[0], /^OWNER\s+PID\s+TYPE\s+KEYS\s+RESTARTED\s+SEQ\s+PERSISTENT$/, 'a header a person can read');
  t.match(rows.find((r) => r.startsWith('nim ')), new RegExp(`^nim\\s+${box.child.pid}\\s+AgentStatus\\s+1\\s+0\\s+\\d+\\s+no$`));

  const once = await run(BIN('ipcmonitor'), ['watch', 'nim/AgentStatus', '--once', ...runDir]);
  t.equal(once.code, 0);
  t.match(once.out, /CREATE\s+nim\/AgentStatus\s+nim\s+\{"agent":"nim"/, 'the initial state');
  t.match(once.out, /SYNCED\s+nim\/AgentStatus/, 'then the end of it');

  const silent = await run(BIN('ipcmonitor'), ['watch', 'verifier/AgentStatus', '--once', '--timeout-ms', '500', ...runDir]);
  t.equal(silent.code, 1, 'an owner that is not running is an error for --once');
  t.match(silent.err, 'no complete state from verifier within 500 ms');

  const unknown = await run(BIN('ipcmonitor'), ['watch', 'NoSuchType', ...runDir]);
  t.equal(unknown.code, 2);
  t.match(unknown.err, 'unknown collection type NoSuchType; name its owner as owner/NoSuchType');

  const diag = await run(BIN('diag'), ['--once', ...runDir]);
  t.equal(diag.code, 0);
  t.match(diag.out, new RegExp(`^\\s*nim\\s+running\\s+all\\s+${box.child.pid}\\s+\\d+s ago\\s+0`, 'm'), 'nim runs');
  t.match(diag.out, /^\s*verifier\s+not running/m, 'verifier does not');
  t.match(diag.out, 'verifier is not on the bus: start zedbox (or verifier alone)', 'and what to do, in plain words');
  t.equal(fs.readFileSync(path.join(dirs.run, 'diag.txt'), 'utf8'), diag.out, 'the same text is kept in the run dir');
});

t.test('ipcmonitor with no bus says where it looked', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const r = await run(BIN('ipcmonitor'), ['list', '--run-dir', dirs.run]);
  t.equal(r.code, 1);
  t.match(r.err, `no bus endpoints under ${dirs.run}/bus: is zedbox running with this --run-dir?`);
});
