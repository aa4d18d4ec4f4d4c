// One-process mode: an agent that throws is restarted alone, with backoff, until
// the crash cap; the other agents and the process keep running.
import t from 'tap';
import { BIN, jsonLine, msgIs, start, tempDirs } from '../lib/proc';

interface Status { state: string; restarts: number; crashes: number; lastError?: string; pid: number }

for (const kind of ['timer', 'promise', 'handler', 'return'] as const) {
  t.test(`an agent failing by ${kind} is restarted, then stopped at the cap; others carry on`, async (t) => {
    const dirs = tempDirs();
    t.teardown(dirs.cleanup);
    const box = start('node', ['--import', 'tsx', 'test/fixtures/crashy-zedbox.ts', dirs.run, dirs.persist], { CRASH_KIND: kind });
    t.teardown(() => { box.child.kill('SIGKILL'); });
    await box.waitFor(msgIs('all agents ready'), 'ready');

    const watch = start(BIN('ipcmonitor'), ['watch', 'crashy/AgentStatus', '--json', ...dirs.flags.slice(0, 4)]);
    t.teardown(() => { watch.child.kill('SIGKILL'); });
    const statusOf = (line: string): Status | undefined => (jsonLine(line)?.value as Status | undefined);
    const failed = await watch.waitFor((l) => statusOf(l)?.state === 'failed', 'crashy reported failed');
    const final = statusOf(failed) as Status;
    t.equal(final.crashes, 3, 'stopped at the crash cap of 3');
    t.equal(final.restarts, 2, 'restarted after each crash below the cap');
    const expected = kind === 'return' ? 'run() returned' : 'crashy:';
    t.match(final.lastError, expected, 'the reason is reported');

    const crashLog = box.lines.map(jsonLine).filter((l) => l?.msg === 'agent crashed, restarting after backoff' && l.agent === 'crashy');
    t.equal(crashLog.length, 2, 'each restart is logged with its reason');
    t.same(crashLog.map((l) => l?.delayMs), [100, 200], 'the restart delay doubles (jitter off in this fixture)');
    t.ok(box.lines.some(msgIs('agent crashed too often, not restarting it')), 'the cap is logged');

    // The process and its other agents were never disturbed.
    t.equal(box.child.exitCode, null, 'zedbox still runs');
    const nim = start(BIN('ipcmonitor'), ['watch', 'nim/AgentStatus', '--json', '--once', ...dirs.flags.slice(0, 4)]);
    await nim.exited;
    const nimStatus = nim.lines.map((l) => statusOf(l)).find(Boolean) as Status;
    t.equal(nimStatus.state, 'running');
    t.equal(nimStatus.restarts, 0, 'nim was never restarted');
    t.equal(nimStatus.pid, box.child.pid, 'nim runs in the same process');

    box.child.kill('SIGTERM');
    const exit = await box.exited;
    t.equal(exit.code, 0, 'a clean stop after SIGTERM');
  });
}

t.test('a restarted agent continues its publications: subscribers never see them vanish', async (t) => {
  const dirs = tempDirs();
  t.teardown(dirs.cleanup);
  const box = start('node', ['--import', 'tsx', 'test/fixtures/crashy-zedbox.ts', dirs.run, dirs.persist], {
    CRASH_KIND: 'timer', CRASH_AFTER_MS: '1500', PUBLISH_AFTER_MS: '300',
  });
  t.teardown(() => { box.child.kill('SIGKILL'); });
  await box.waitFor(msgIs('all agents ready'), 'ready');
  const probe = start(BIN('ipcmonitor'), ['watch', 'crashy/Probe', '--json', ...dirs.flags.slice(0, 2)]);
  t.teardown(() => { probe.child.kill('SIGKILL'); });
  await probe.waitFor((l) => jsonLine(l)?.event === 'create', 'the first publish');

  const status = start(BIN('ipcmonitor'), ['watch', 'crashy/AgentStatus', '--json', ...dirs.flags.slice(0, 2)]);
  t.teardown(() => { status.child.kill('SIGKILL'); });
  await status.waitFor((l) => (jsonLine(l)?.value as Status | undefined)?.state === 'failed', 'three crashes', 20_000);

  const events = probe.lines.map(jsonLine).filter((e) => e?.key === 'stable').map((e) => e?.event);
  t.same(events, ['create'], 'one create, and no delete or modify across two restarts');
});
