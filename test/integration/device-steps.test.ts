// scripts/device-steps.sh as a device runs it at boot: keys, onboarding, the
// agents; run again while zedbox runs, it changes nothing; after a stop it boots
// again with the same identity and without asking the controller.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { Controller } from '../lib/controller';
import { ROOT } from '../lib/proc';
import { waitUntil } from '../lib/wait';

const exec = promisify(execFile);

t.test('device-steps.sh onboards once, starts zedbox once, and keeps the identity across boots', async (t) => {
  const ctl = new Controller();
  t.teardown(() => ctl.cleanup());
  await ctl.start();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zds-'));
  const env = { ...process.env, ZEDBOX_ROOT: root, ZEDBOX_INSTANCE: `ds${process.pid}`, ZEDBOX_NETWORK_WAIT: '10' };
  const pidsFile = path.join(root, 'run', 'zedbox.pids');
  const stopAll = async (): Promise<void> => {
    const pids = fs.existsSync(pidsFile) ? fs.readFileSync(pidsFile, 'utf8').split('\n').filter(Boolean).map(Number) : [];
    for (const pid of pids) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
    await waitUntil(() => pids.every((pid) => { try { process.kill(pid, 0); return false; } catch { return true; } }), 'zedbox stopped', 30_000);
  };
  t.teardown(async () => { await stopAll(); fs.rmSync(root, { recursive: true, force: true }); });
  fs.mkdirSync(path.join(root, 'config'), { recursive: true });
  await ctl.zedctl(['device', 'add', 'steps-1', '--out', path.join(root, 'config', 'controller.json')]);

  const first = await exec('bash', [path.join(ROOT, 'scripts/device-steps.sh')], { env });
  t.match(first.stderr, /onboarding with the controller/, 'the first boot onboards');
  const uuid = fs.readFileSync(path.join(root, 'persist', 'status', 'uuid'), 'utf8').trim();
  t.match(uuid, /^[0-9a-f-]{36}$/, `it got a UUID (${uuid})`);
  t.equal(fs.statSync(path.join(root, 'persist', 'certs', 'device-keys.json')).mode & 0o777, 0o600, 'its keys are private');
  const pids = fs.readFileSync(pidsFile, 'utf8').split('\n').filter(Boolean);
  t.equal(pids.length, 1, 'one zedbox process (every agent in it)');
  await waitUntil(async () => JSON.parse((await ctl.zedctl(['show', 'steps-1', '--json'])).out).status?.state === 'online', 'the device is online', 30_000);

  const second = await exec('bash', [path.join(ROOT, 'scripts/device-steps.sh')], { env });
  t.match(second.stderr, /zedbox already runs/, 'run again, it says zedbox runs');
  t.same(fs.readFileSync(pidsFile, 'utf8').split('\n').filter(Boolean), pids, 'and starts nothing');

  await stopAll();
  const keys = fs.readFileSync(path.join(root, 'persist', 'certs', 'device-keys.json'), 'utf8');
  const third = await exec('bash', [path.join(ROOT, 'scripts/device-steps.sh')], { env });
  t.notMatch(third.stderr, /onboarding with the controller/, 'the next boot does not onboard again');
  t.match(third.stderr, new RegExp(`device ${uuid}`), 'it boots as the same device');
  t.equal(fs.readFileSync(path.join(root, 'persist', 'certs', 'device-keys.json'), 'utf8'), keys, 'with the same keys');
  const rows = JSON.parse((await ctl.zedctl(['devices', '--json'])).out) as unknown[];
  t.equal(rows.length, 1, 'the controller still knows one device');
});
