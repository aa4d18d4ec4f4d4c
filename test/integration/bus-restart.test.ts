// A publisher killed with SIGKILL in the middle of a stream and started again:
// the subscriber must end with the new instance's state, hear deletes for keys
// the new instance no longer has (EVE loses those), stay quiet for keys whose
// value did not change, and hear the new instance's restarted signal.
import t from 'tap';
import { entries, startPeer, startPublisher, tempDirs } from '../fixtures/peer';

t.test('a publisher SIGKILLed mid-stream and restarted', async (t) => {
  const dirs = tempDirs(t);
  const p1 = await startPublisher(t, 'p1', dirs);
  await p1.call('publication', { type: 'Item', entries: entries(20), signal: true });
  const sub = await startPeer(t, 'sub', dirs);
  await sub.call('subscribe', { type: 'Item' });
  await sub.waitFor((e) => e.ev === 'restarted', 'restarted from p1');

  await p1.call('stream', { type: 'Item', prefix: 's', keys: 50, batch: 10, delayMs: 1, progress: true });
  // Kill it once the subscriber has heard stream updates, while the stream still runs.
  await sub.waitFor((e) => e.ev === 'modify' && String(e.key).startsWith('s'), 'stream updates from p1');
  const died = await p1.kill('SIGKILL');
  t.equal(died.signal, 'SIGKILL', 'p1 died by SIGKILL');
  const before = (await sub.call('state', { type: 'Item' })).entries as Record<string, unknown>;
  t.ok(Object.keys(before).some((k) => k.startsWith('s')), 'the subscriber had stream keys from p1');
  const from = sub.mark();

  // p2 keeps k0-k9 as they were, changes k10-k14, drops k15-k19 and the stream
  // keys, adds n0-n4, and signals restarted: all in one tick.
  const kept = entries(10);
  const changed = Object.fromEntries(Object.entries(entries(5, 100)).map(([k, v], i) => [`k${10 + i}`, v]));
  const added = entries(5, 0, 'n');
  const p2 = await startPublisher(t, 'p2', dirs);
  await p2.call('publication', { type: 'Item', entries: { ...kept, ...changed, ...added }, signal: true });
  const restarted = await sub.waitFor((e) => e.ev === 'restarted', 'restarted from p2', { from });
  t.equal(restarted.counter, 1, "p2's own counter (1 again) fires the restarted handler");

  const after = sub.handlerEvents('Item', from);
  const p2Keys = new Set([...Object.keys(kept), ...Object.keys(changed), ...Object.keys(added)]);
  const gone = Object.keys(before).filter((k) => !p2Keys.has(k)).sort();
  t.same(
    after.filter((e) => e.ev === 'delete').map((e) => e.key).sort(),
    gone,
    `every key p2 no longer has (${gone.length}: k15-k19 and the stream keys) arrives as a delete`,
  );
  t.same(
    after.filter((e) => e.ev === 'modify').map((e) => [e.key, e.value]),
    Object.entries(changed),
    'the changed keys arrive as modifies with the new values',
  );
  t.same(
    after.filter((e) => e.ev === 'create').map((e) => [e.key, e.value]),
    Object.entries(added),
    'the new keys arrive as creates',
  );
  t.same(after.filter((e) => Object.hasOwn(kept, String(e.key))), [], 'keys republished with the same value cause no handler call');
  t.same(after.filter((e) => e.ev === 'synchronized'), [], 'synchronized is not fired again');
  t.same(after.filter((e) => e.ev === 'restarted').length, 1, 'restarted fires once for p2');

  const expected = (await p2.call('state', { type: 'Item', side: 'pub' })).entries;
  t.same((await sub.call('state', { type: 'Item' })).entries, expected, "the subscriber ends with p2's state");

  // Same value again from the live instance: still no handler call.
  const live = sub.mark();
  t.equal((await p2.call('publish', { type: 'Item', key: 'k0', value: { n: 0 } })).changed, false, 'an equal publish reports no change');
  await p2.call('publish', { type: 'Item', key: 'k1', value: { n: 1001 } });
  await sub.waitForValue('Item', 'k1', { n: 1001 }, live);
  t.same(sub.handlerEvents('Item', live).map((e) => e.key), ['k1'], 'only the changed key reached the handlers');
  const stats = await sub.stats('Item');
  t.equal(stats.calls.restarted, 2, 'two restarted calls in all: one per publisher instance');
  t.ok(stats.mirror.epochChanges >= 1, 'the subscriber noticed the new publisher instance');
});
