// Why zedbox starts: every row of the reason table, and the record on disk
// across a sequence of runs as the device would live them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import {
  bootReason, lastRunFile, readLastRun, readMachineBootId, startRecord, startRun, stopRecord, writeRunning, writeStopped,
  type LastRun, type StopReason,
} from '../../agents/zedagent/boot-reason';
import { BOOT_REASONS } from '../../api/info';

const BOOT_A = '11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const BOOT_B = '22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const T0 = '2026-01-01T00:00:00.000Z';

function run(machineBootId: string, stopped?: StopReason): LastRun {
  const r: LastRun = { machineBootId, state: 'running', startedAt: T0, restartCounter: 4 };
  return stopped ? stopRecord(r, stopped, '2026-01-01T01:00:00.000Z') : r;
}

function tempPersist(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-bootreason-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the reason table', async (t) => {
  const rows: [string, LastRun | undefined, string, string][] = [
    ['no record', undefined, BOOT_A, 'first-boot'],
    ['stopped for a reboot command, machine booted since', run(BOOT_A, 'reboot-command'), BOOT_B, 'reboot-command'],
    ['stopped for a shutdown command, machine booted since', run(BOOT_A, 'shutdown-command'), BOOT_B, 'shutdown-command'],
    ['stopped by the OS, machine booted since', run(BOOT_A, 'stop'), BOOT_B, 'machine-reboot'],
    ['still running when the machine went down', run(BOOT_A), BOOT_B, 'power-or-crash'],
    ['stopped cleanly, same machine boot', run(BOOT_A, 'stop'), BOOT_A, 'zedbox-restart'],
    ['reboot command that never rebooted, same machine boot', run(BOOT_A, 'reboot-command'), BOOT_A, 'zedbox-restart'],
    ['shutdown command, same machine boot', run(BOOT_A, 'shutdown-command'), BOOT_A, 'zedbox-restart'],
    ['still running, same machine boot', run(BOOT_A), BOOT_A, 'zedbox-crash'],
  ];
  for (const [what, prev, now, want] of rows) t.equal(bootReason(prev, { machineBootId: now }), want, what);
  const seen = new Set(rows.map((r) => r[3]));
  t.same(BOOT_REASONS.filter((r) => !seen.has(r)), [], 'every reason has a row');
});

t.test('a start record counts starts and carries its reason', async (t) => {
  const first = startRecord(undefined, { machineBootId: BOOT_A, startedAt: T0, zedboxVersion: '0.1.0' });
  t.same(first, { machineBootId: BOOT_A, state: 'running', startedAt: T0, restartCounter: 1, bootReason: 'first-boot', zedboxVersion: '0.1.0' });
  const next = startRecord(stopRecord(first, 'stop', T0), { machineBootId: BOOT_A, startedAt: T0 });
  t.equal(next.restartCounter, 2);
  t.equal(next.bootReason, 'zedbox-restart');
  t.equal(next.stopReason, undefined, 'a new run has no stop yet');
});

t.test('the record on disk through a device life', async (t) => {
  const persist = tempPersist(t);
  t.equal(readLastRun(persist), undefined, 'nothing yet');
  t.equal(writeStopped(persist, 'stop'), undefined, 'stopping without a record writes nothing');
  t.notOk(fs.existsSync(lastRunFile(persist)));

  const a = startRun(persist, { machineBootId: BOOT_A, startedAt: T0, zedboxVersion: '0.1.0' });
  t.equal(a.reason, 'first-boot');
  t.equal(lastRunFile(persist), path.join(persist, 'status', 'zedagent', 'last-run.json'));
  t.same(readLastRun(persist), a.record, 'written as returned');
  t.equal((fs.statSync(lastRunFile(persist)).mode & 0o777), 0o600);

  t.equal(startRun(persist, { machineBootId: BOOT_A }).reason, 'zedbox-crash', 'killed without a stop');
  writeStopped(persist, 'stop');
  t.equal(startRun(persist, { machineBootId: BOOT_A }).reason, 'zedbox-restart');
  const stopped = writeStopped(persist, 'reboot-command', '2026-01-02T00:00:00.000Z')!;
  t.match(readLastRun(persist), { state: 'stopped', stopReason: 'reboot-command', stoppedAt: '2026-01-02T00:00:00.000Z' });
  t.same(readLastRun(persist), stopped);
  t.equal(startRun(persist, { machineBootId: BOOT_B }).reason, 'reboot-command');
  t.equal(startRun(persist, { machineBootId: BOOT_A }).reason, 'power-or-crash', 'a new boot while marked running');
  writeStopped(persist, 'shutdown-command');
  const last = startRun(persist, { machineBootId: BOOT_B });
  t.equal(last.reason, 'shutdown-command');
  t.equal(last.record.restartCounter, 6, 'six starts');
  t.equal(last.previous?.restartCounter, 5);
  t.same(fs.readdirSync(path.dirname(lastRunFile(persist))), ['last-run.json'], 'no temporary files left');
});

t.test('writeRunning drops the stop of a record it is given', async (t) => {
  const persist = tempPersist(t);
  writeRunning(persist, run(BOOT_A, 'stop'));
  const r = readLastRun(persist)!;
  t.equal(r.state, 'running');
  t.equal(r.stopReason, undefined);
  t.equal(r.stoppedAt, undefined);
});

t.test('a damaged record counts as none', async (t) => {
  const persist = tempPersist(t);
  fs.mkdirSync(path.dirname(lastRunFile(persist)), { recursive: true });
  fs.writeFileSync(lastRunFile(persist), '{"machineBootId": "x", "state": "running"');
  t.equal(readLastRun(persist), undefined, 'truncated JSON');
  fs.writeFileSync(lastRunFile(persist), '{"machineBootId": "x", "state": "sleeping", "startedAt": "", "restartCounter": 1}');
  t.equal(readLastRun(persist), undefined, 'wrong shape');
  const r = startRun(persist, { machineBootId: BOOT_A });
  t.equal(r.reason, 'first-boot');
  t.equal(r.record.restartCounter, 1);
});

t.test("this machine's boot id", async (t) => {
  const id = readMachineBootId();
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  t.equal(readMachineBootId(), id, 'stable within a boot');
});
