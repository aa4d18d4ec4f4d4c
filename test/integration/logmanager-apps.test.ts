// An app's output reaches the "controller": a container on the real engine prints
// numbered lines on stdout and stderr; logmanager follows it from its DomainStatus
// and the LogBatches, unzipped, hold every line once, in order, tagged with the
// app's name and id, the stream, its level and Docker's time. A restart of the
// same container is followed too, and a removed container is let go.
import t from 'tap';
import { LogManagerStatusCollection } from '../../pubsub/collections/logs';
import { waitUntil } from '../lib/wait';
import { domainStatus, newAppId, numberedLines, removeDirs, runApp, startLogmanager, docker } from '../lib/logmanager-helpers';

const WAIT_MS = 30_000; // a bound so a broken run ends, not a performance limit

t.test('an app\'s stdout and stderr lines arrive in order, tagged', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  const N = 300;
  const app = await runApp(rig.h.settings.instance, `${numberedLines('out', N)}; ${numberedLines('err', 5, 0, 'stderr')}; sleep 3600`);
  t.teardown(() => app.remove());
  const appId = newAppId();
  rig.domains.publish(appId, domainStatus(appId, 'numbers', app.id));

  await waitUntil(() => rig.standIn.lines().length >= N + 5, `${N + 5} lines at the controller`, WAIT_MS);
  const lines = rig.standIn.lines();
  t.equal(lines.length, N + 5, 'every line once');
  const out = lines.filter((l) => l.stream === 'stdout');
  const err = lines.filter((l) => l.stream === 'stderr');
  t.same(out.map((l) => l.msg.trim()), Array.from({ length: N }, (_, i) => `out ${i + 1}`), 'stdout in order');
  t.same(err.map((l) => l.msg.trim()), Array.from({ length: 5 }, (_, i) => `err ${i + 1}`), 'stderr in order');
  t.ok(lines.every((l) => l.source === 'app' && l.app === 'numbers' && l.appId === appId), 'tagged with the app');
  t.ok(out.every((l) => l.level === 'info') && err.every((l) => l.level === 'warn'), 'stdout is info, stderr warn');
  t.ok(lines.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/.test(l.time)), 'Docker\'s time, to the nanosecond');
  const times = out.map((l) => l.time.replace(/\.(\d+)Z$/, (_, f: string) => `.${f.padEnd(9, '0')}Z`));
  t.same(times, [...times].sort(), 'times never go back');
  const seqs = [...rig.standIn.received.keys()].sort((a, b) => a - b);
  t.same(seqs, seqs.map((_, i) => seqs[0]! + i), 'seqs without gaps');

  await rig.h.waitFor(LogManagerStatusCollection, 'global', (s) => (s?.sentLines ?? 0) >= N + 5 && s?.queuedBatches === 0, 'status: all sent', WAIT_MS);
});

t.test('a restarted container is followed again; a removed one is let go', async (t) => {
  const rig = await startLogmanager({ items: { 'timer.log.batch': '0.2' } });
  t.teardown(async () => { await rig.stop(); removeDirs(rig.h.dirs); });
  // Prints one batch of numbered lines per start (a counter file survives the restart).
  const app = await runApp(rig.h.settings.instance, 'n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/n; i=1; while [ $i -le 20 ]; do echo "run $n line $i"; i=$((i+1)); done; sleep 3600');
  t.teardown(() => app.remove());
  const appId = newAppId();
  rig.domains.publish(appId, domainStatus(appId, 'restarts', app.id));
  await waitUntil(() => rig.standIn.lines().length >= 20, 'the first run\'s lines', WAIT_MS);

  const c = docker().getContainer(app.id);
  await c.restart({ t: 0 });
  const info = await c.inspect();
  rig.domains.publish(appId, domainStatus(appId, 'restarts', app.id, { restarts: 1, startedAt: info.State.StartedAt }));
  await waitUntil(() => rig.standIn.lines().length >= 40, 'the second run\'s lines', WAIT_MS);
  const msgs = rig.standIn.lines().map((l) => l.msg);
  t.same(msgs, [1, 2].flatMap((run) => Array.from({ length: 20 }, (_, i) => `run ${run} line ${i + 1}`)), 'both runs, once each, in order');

  rig.domains.unpublish(appId);
  await app.remove();
  const app2 = await runApp(rig.h.settings.instance, 'echo other app; sleep 3600');
  t.teardown(() => app2.remove());
  const id2 = newAppId();
  rig.domains.publish(id2, domainStatus(id2, 'other', app2.id));
  await waitUntil(() => rig.standIn.lines().some((l) => l.app === 'other'), 'the next app\'s line', WAIT_MS);
  t.equal(rig.standIn.lines().filter((l) => l.app === 'restarts').length, 40, 'nothing more from the removed app');
});
