// An app's output at the edges, on the real engine: a last line without a newline
// arrives (once, also when the container runs again); an app that writes without
// any newline (with or without a terminal) is sent as it goes, its start cut and
// the rest counted, rather than held in logmanager's memory; and the cursors of
// containers the engine no longer has are forgotten.
import t from 'tap';
import type { LogLine } from '../../api/logs';
import { AppLogs } from '../../agents/logmanager/app-logs';
import type { Cursor, OutputLine } from '../../agents/logmanager/docker-lines';
import { MAX_MSG_CHARS } from '../../agents/logmanager/levels';
import { LABEL_INSTANCE, LABEL_OWNED } from '../../lib/docker';
import { Logger } from '../../lib/log';
import { ensureServices } from '../lib/services';
import { waitUntil } from '../lib/wait';
import { docker, domainStatus, newAppId, removeDirs, runApp, startLogmanager } from '../lib/logmanager-helpers';

const WAIT_MS = 30_000; // a bound so a broken run ends, not a performance limit
const INSTANCE = `lm-app-lines-${process.pid}`;
const log = new Logger({ source: 'test', level: 'error', sink: { write: () => undefined } });

/** Like runApp, with a terminal (the logs API then sends raw bytes, not frames). */
async function runTtyApp(script: string): Promise<{ id: string; remove(): Promise<void> }> {
  const c = await docker().createContainer({
    Image: ensureServices().baseImage, Cmd: ['sh', '-c', script], Tty: true,
    Labels: { [LABEL_OWNED]: 'true', [LABEL_INSTANCE]: INSTANCE }, HostConfig: { NetworkMode: 'none' },
  });
  await c.start();
  return { id: c.id, remove: () => c.remove({ force: true }).then(() => undefined, () => undefined) };
}

/** A line without a newline, 3,000,000 characters, then the app stays. */
const ENDLESS = 'head -c 3000000 /dev/zero | tr "\\0" x; sleep 3600';
const TOTAL = 3_000_000;

/** What the controller got of one long line: its start, and every count, adding up to its length. */
function longLine(lines: LogLine[]): { head?: LogLine; counted: number; ended: boolean } {
  let counted = 0;
  let head: LogLine | undefined;
  let ended = false;
  for (const l of lines) {
    let m = /… \[cut: the line goes on past (\d+) characters\]$/.exec(l.msg);
    if (m) { head = l; counted += Number(m[1]); continue; }
    m = /^\[cut: (\d+) more characters of the line begun at /.exec(l.msg);
    if (m) { counted += Number(m[1]); continue; }
    m = /^\[cut: the line begun at .* ends after (\d+) more characters\]$/.exec(l.msg);
    if (m) { counted += Number(m[1]); ended = true; continue; }
    // A last piece Docker writes after the container's stop was reported comes as a line of its own.
    if (head && /^x+$/.test(l.msg)) counted += l.msg.length;
  }
  return { head, counted, ended };
}

t.test('an app\'s last line without a newline arrives, once, also when the container runs again', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  const app = await runApp(INSTANCE, 'echo one; printf "no newline at end"');
  t.teardown(() => app.remove());
  const appId = newAppId();
  rig.domains.publish(appId, domainStatus(appId, 'tail', app.id));
  await waitUntil(() => rig.standIn.lines().length >= 2, 'both lines at the controller', WAIT_MS);
  t.same(rig.standIn.lines().map((l) => l.msg), ['one', 'no newline at end']);

  const c = docker().getContainer(app.id);
  await c.wait();
  await c.start();
  const info = await c.inspect();
  rig.domains.publish(appId, domainStatus(appId, 'tail', app.id, { restarts: 1, startedAt: info.State.StartedAt }));
  await waitUntil(() => rig.standIn.lines().length >= 4, 'the second run\'s lines', WAIT_MS);
  t.same(rig.standIn.lines().map((l) => l.msg), ['one', 'no newline at end', 'one', 'no newline at end'], 'each once, none joined to the next run\'s');
});

t.test('an app writing without newlines is sent as it goes: its start cut, the rest counted', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  for (const [name, start] of [['frames', () => runApp(INSTANCE, ENDLESS)], ['tty', () => runTtyApp(ENDLESS)]] as const) {
    const app = await start();
    t.teardown(() => app.remove());
    const appId = newAppId();
    rig.domains.publish(appId, domainStatus(appId, name, app.id));
    const mine = (): LogLine[] => rig.standIn.lines().filter((l) => l.app === name);
    // While the app still runs and no newline ever came, its start is at the controller.
    await waitUntil(() => longLine(mine()).head !== undefined, `${name}: the line's start while it goes on`, WAIT_MS);
    t.equal(longLine(mine()).head?.msg.indexOf('…'), MAX_MSG_CHARS, `${name}: the first ${MAX_MSG_CHARS} characters, then the note`);
    // The container stops: the rest of the line is counted, to its end.
    await docker().getContainer(app.id).kill();
    await waitUntil(() => longLine(mine()).ended && longLine(mine()).counted >= TOTAL, `${name}: the line's end`, WAIT_MS);
    t.equal(longLine(mine()).counted, TOTAL, `${name}: every character counted once`);
  }
});

t.test('the cursor of a container removed after its app went is forgotten; at start, those the engine no longer has', async (t) => {
  const cursors = new Map<string, Cursor>();
  const lines: OutputLine[] = [];
  const apps = new AppLogs({ docker: docker(), cursors, onLine: (_a, l) => lines.push(l), log, retireGraceMs: 3000 });
  t.teardown(() => apps.stop());
  const app = await runApp(INSTANCE, 'echo hello; sleep 3600');
  t.teardown(() => app.remove());
  const appId = newAppId();
  apps.update([domainStatus(appId, 'gone', app.id)]);
  await waitUntil(() => lines.length >= 1, 'its line', WAIT_MS);
  t.ok(cursors.has(app.id), 'followed: a cursor');
  // The app goes (no longer named), then its container (within the grace period).
  apps.update([]);
  await app.remove();
  await waitUntil(() => !cursors.has(app.id), 'the cursor forgotten', WAIT_MS);

  const keep = await runApp(INSTANCE, 'sleep 3600');
  t.teardown(() => keep.remove());
  cursors.set(keep.id, { t: '2026-05-06T07:00:00.000000000Z', n: 1 });
  cursors.set('0'.repeat(64), { t: '2026-05-06T07:00:00.000000000Z', n: 1 });
  t.equal(await apps.pruneCursors(), 1, 'one pruned');
  t.same([...cursors.keys()], [keep.id], 'the container the engine has keeps its cursor');
});
