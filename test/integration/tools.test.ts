// ipcmonitor and diag as a person at the device uses them, against a running zedbox.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import * as net from 'node:net';
import { BIN, ZEDBOX, msgIs, run, start, tempDirs } from '../lib/proc';
import { freePort } from '../lib/config-builder';
import { testProvisioning } from '../lib/provisioning';
import { waitUntil } from '../lib/wait';

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

t.test('diag probes the controller\'s broker itself when nothing on the device can say', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  fs.mkdirSync(dirs.config, { recursive: true });
  const closed = await freePort();
  const provision = (port: number): void => fs.writeFileSync(path.join(dirs.config, 'controller.json'), JSON.stringify(testProvisioning(`mqtt://127.0.0.1:${port}`, 'diag-1')));
  provision(closed);
  const refused = await run(BIN('diag'), ['--once', ...dirs.flags]);
  t.match(refused.out, 'serial diag-1  not onboarded yet');
  t.match(refused.out, `diag's probe of 127.0.0.1:${closed}: failed: 127.0.0.1:${closed}: connection refused: the host is reachable but no broker listens there`);
  t.match(refused.out, `ERROR: diag cannot reach the controller's broker 127.0.0.1:${closed}`, 'and it is the first thing wrong with the network');

  const server = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  await new Promise((r) => server.once('listening', r));
  provision((server.address() as net.AddressInfo).port);
  const reached = await run(BIN('diag'), ['--once', ...dirs.flags]);
  t.match(reached.out, /diag's probe of 127\.0\.0\.1:\d+: ok: connected to 127\.0\.0\.1:\d+ in \d+ ms/);
  const off = await run(BIN('diag'), ['--once', '--no-probe', ...dirs.flags]);
  t.notMatch(off.out, 'diag\'s probe', '--no-probe does not probe');
});

t.test('diag left running redraws when the device changes, and keeps diag.txt in step', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const diagTxt = path.join(dirs.run, 'diag.txt');
  const read = (): string => (fs.existsSync(diagTxt) ? fs.readFileSync(diagTxt, 'utf8') : '');
  const watcher = start(BIN('diag'), ['--interval-ms', '500', '--no-probe', ...dirs.flags]);
  t.teardown(() => { watcher.child.kill('SIGKILL'); });
  await waitUntil(() => read().includes('zedbox is not running'), 'diag says zedbox is not running', 10_000);

  const box = start(ZEDBOX, ['all', '--only', 'nim,ledmanager', ...dirs.flags]);
  t.teardown(() => { box.child.kill('SIGKILL'); });
  await box.waitFor(msgIs('all agents ready'), 'ready');
  await waitUntil(() => /^\s*nim\s+running/m.test(read()) && /^\s*ledmanager\s+running/m.test(read()), 'diag.txt shows the agents running', 15_000);
  t.notMatch(read(), 'zedbox is not running', 'the old complaint is gone');
  t.match(read(), /NETWORK {5}the host's own network/, 'and nim\'s view of the host arrived');
  const screen = watcher.lines.join('\n');
  t.match(screen, '\x1b[2J', 'the console is cleared and redrawn, not scrolled');

  box.child.kill('SIGTERM');
  await box.exited;
  await waitUntil(() => /^\s*nim\s+not running/m.test(read()), 'diag.txt shows nim gone', 15_000);
  watcher.child.kill('SIGINT');
  t.equal((await watcher.exited).code, 0, 'Ctrl-C ends diag cleanly');
});
