// The multi-call entry of the built bundle: names, links, help, errors.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { BIN, ZEDBOX, run, tempDirs } from '../lib/proc';

const AGENTS = ['nim', 'downloader', 'verifier', 'volumemgr', 'zedmanager', 'domainmgr', 'zedagent', 'logmanager', 'ledmanager'];
const TOOLS = ['ipcmonitor', 'diag'];

t.test('an unknown name is refused with the list of agents, exit 1', async (t) => {
  const r = await run(ZEDBOX, ['frobnicate']);
  t.equal(r.code, 1);
  t.match(r.err, 'unknown agent or tool "frobnicate"');
  for (const name of [...AGENTS, ...TOOLS]) t.match(r.err, new RegExp(`^  ${name} `, 'm'), `lists ${name}`);

  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const link = path.join(dirs.root, 'bogus');
  fs.symlinkSync(ZEDBOX, link);
  const viaLink = await run(link, []);
  t.equal(viaLink.code, 1, 'also through a link with an unknown name');
  t.match(viaLink.err, 'unknown agent or tool "bogus"');
});

t.test('every agent and tool has --help, through its link and as zedbox <name>', async (t) => {
  for (const name of [...AGENTS, ...TOOLS]) {
    const viaLink = await run(BIN(name), ['--help']);
    t.equal(viaLink.code, 0, `${name} --help exits 0`);
    t.match(viaLink.out, new RegExp(`^${name}: `), `${name} --help names it`);
    t.match(viaLink.out, '--run-dir', `${name} --help lists the common options`);
    const viaArg = await run(ZEDBOX, [name, '--help']);
    t.equal(viaArg.out, viaLink.out, `zedbox ${name} --help is the same text`);
  }
  const all = await run(ZEDBOX, ['--help']);
  t.equal(all.code, 0);
  t.match(all.out, 'ipcmonitor');
});

t.test('every agent\'s help tells what it does, and none claims to be unbuilt', async (t) => {
  for (const name of ['nim', 'logmanager', 'ledmanager', 'domainmgr']) {
    const r = await run(BIN(name), ['--help']);
    t.notMatch(r.out, 'not yet implemented', `${name} is built`);
    t.match(r.out, '--config FILE', `${name} lists the device options`);
  }
  t.match((await run(BIN('nim'), ['--help'])).out, 'DevicePortConfig', 'nim names where its port configurations come from');
});

t.test('version, and usage errors exit 2 with a hint', async (t) => {
  const v = await run(ZEDBOX, ['version']);
  t.equal(v.code, 0);
  t.match(v.out, /^zedbox \d+\.\d+\.\d+/);
  const bad = await run(BIN('nim'), ['--no-such-flag']);
  t.equal(bad.code, 2);
  t.match(bad.err, "Unknown option '--no-such-flag'");
  t.match(bad.err, "Try 'nim --help'");
  const only = await run(ZEDBOX, ['all', '--only', 'nope']);
  t.equal(only.code, 2);
  t.match(only.err, 'no agent named "nope"');
  const instance = await run(ZEDBOX, ['all', '--run-dir', '/nonexistent/run'], { ZEDBOX_INSTANCE: 'Not/A Name' });
  t.equal(instance.code, 2, 'an instance name Docker cannot use is a usage error');
  t.match(instance.err, 'ZEDBOX_INSTANCE "Not/A Name" must be');
});

t.test('dist/ runs on its own, without node_modules', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const copy = path.join(dirs.root, 'dist');
  fs.cpSync(path.join(path.dirname(ZEDBOX)), copy, { recursive: true, verbatimSymlinks: true });
  const r = await run(path.join(copy, 'bin', 'ipcmonitor'), ['--help'], { NODE_PATH: '' });
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^ipcmonitor: /);
  // Loading zeromq's addon is what a bundle most often gets wrong: list needs it.
  const list = await run(path.join(copy, 'bin', 'ipcmonitor'), ['list', '--run-dir', dirs.run]);
  t.equal(list.code, 1, 'no bus here: a clear error, not a crash');
  t.match(list.err, 'no bus endpoints under');
});
