// Persistent collections across publisher restarts and crashes during a write.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { startPeer, startPublisher, tempDirs, type Dirs } from '../fixtures/peer';

const storeDir = (dirs: Dirs): string => path.join(dirs.persist, 'status', 'alpha', 'Setting');

/** Every file of the store: .json files must parse to {key, value}; temp files are listed apart. */
function readStore(dir: string): { values: Record<string, unknown>; temps: string[]; others: string[] } {
  const out = { values: {} as Record<string, unknown>, temps: [] as string[], others: [] as string[] };
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith('.') && name.endsWith('.tmp')) out.temps.push(name);
    else if (!name.endsWith('.json')) out.others.push(name);
    else {
      const parsed = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { key: string; value: unknown };
      out.values[parsed.key] = parsed.value;
    }
  }
  return out;
}

t.test('a persistent collection survives a publisher restart; subscribers preload it', async (t) => {
  const dirs = tempDirs(t);
  const p1 = await startPublisher(t, 'p1', dirs);
  const initial = { s0: { n: 0 }, s1: { n: 1, pad: 'é/ü' }, 'a/b c': { n: 2 }, s3: { n: 3 }, gone: { n: 4 } };
  await p1.call('publication', { type: 'Setting', entries: initial, signal: true });
  await p1.call('unpublish', { type: 'Setting', key: 'gone' });
  t.equal((await p1.kill('SIGKILL')).signal, 'SIGKILL', 'p1 killed');
  const { gone: _, ...kept } = initial;
  t.same(readStore(storeDir(dirs)), { values: kept, temps: [], others: [] }, 'the store holds exactly the published values');

  // No publisher runs now: the subscriber starts from what is on disk.
  const sub = await startPeer(t, 'sub', dirs);
  await sub.call('subscribe', { type: 'Setting' });
  for (const [k, v] of Object.entries(kept)) await sub.waitForValue('Setting', k, v);
  const early = await sub.stats('Setting');
  t.equal(early.synchronized, false, 'the preloaded values come before any publisher answered');
  t.same(sub.handlerEvents('Setting').map((e) => e.ev), Array(4).fill('create'), 'as one create per persisted key');

  const from = sub.mark();
  const p2 = await startPublisher(t, 'p2', dirs);
  t.equal((await p2.call('publication', { type: 'Setting' })).loaded, 4, 'the restarted publisher reloads every value');
  t.same((await p2.call('state', { type: 'Setting', side: 'pub' })).entries, kept, 'unchanged');
  await sub.waitFor((e) => e.ev === 'synchronized', 'synchronized', { from });
  t.same(sub.handlerEvents('Setting', from).map((e) => e.ev), ['synchronized'],
    'the publisher confirming the preloaded values causes no create or modify');

  await p2.call('publish', { type: 'Setting', key: 's0', value: { n: 10 } });
  await p2.call('unpublish', { type: 'Setting', key: 's3' });
  await p2.call('publish', { type: 'Setting', key: 'end', value: { n: 1 } });
  await sub.waitForValue('Setting', 'end', { n: 1 }, from);
  t.same(sub.handlerEvents('Setting', from).slice(1).map((e) => [e.ev, e.key]), [['modify', 's0'], ['delete', 's3'], ['create', 'end']],
    'then live updates flow as usual');
  t.same(readStore(storeDir(dirs)).values, (await p2.call('state', { type: 'Setting', side: 'pub' })).entries, 'and reach the disk');
});

// At each stage the write is cut short by SIGKILL. Before the rename the old value
// must remain; after it the new one. Never a torn or missing file.
const stages = [
  { stage: 'after-write', survives: 'old' },
  { stage: 'after-fsync', survives: 'old' },
  { stage: 'after-rename', survives: 'new' },
] as const;

for (const { stage, survives } of stages) {
  t.test(`a crash ${stage} of a persistent write leaves the ${survives} value`, async (t) => {
    const dirs = tempDirs(t);
    const oldValue = { n: 1, pad: 'o'.repeat(3000) };
    const newValue = { n: 2, pad: 'n'.repeat(5000) };
    const p1 = await startPublisher(t, 'p1', dirs);
    await p1.call('publication', { type: 'Setting', entries: { x: oldValue, y: { n: 9 } } });
    await p1.kill('SIGKILL');

    const p2 = await startPublisher(t, 'p2', { ...dirs, env: { ZEDBOX_FAULT: `persist-crash:${stage}` } });
    await p2.call('publication', { type: 'Setting' });
    const reply = await p2.request('publish', { type: 'Setting', key: 'x', value: newValue }).catch(() => undefined);
    if (reply) {
      // A publish that returns means no crash was injected: nothing below would test anything.
      t.fail(`ZEDBOX_FAULT=persist-crash:${stage} did not crash the publisher: publish returned ${JSON.stringify(reply)}`);
      return;
    }
    t.equal((await p2.exited).signal, 'SIGKILL', `the fault killed p2 ${stage}, before the publish returned`);

    const expected = survives === 'old' ? oldValue : newValue;
    const store = readStore(storeDir(dirs)); // throws if any .json file is torn
    t.same(store.values, { x: expected, y: { n: 9 } }, `x holds the ${survives} value, y is untouched`);
    t.equal(store.temps.length, survives === 'old' ? 1 : 0, survives === 'old' ? 'the interrupted temp file is left' : 'no temp file is left');

    const sub = await startPeer(t, 'sub', dirs);
    await sub.call('subscribe', { type: 'Setting' });
    await sub.waitForValue('Setting', 'x', expected);
    t.pass('a subscriber preloads it, skipping the temp file');

    const p3 = await startPublisher(t, 'p3', dirs);
    await p3.call('publication', { type: 'Setting' });
    t.same((await p3.call('state', { type: 'Setting', side: 'pub' })).entries, { x: expected, y: { n: 9 } }, 'the restarted publisher loads it');
    t.same(readStore(storeDir(dirs)).temps, [], 'and clears the leftover temp file');
    await sub.waitFor((e) => e.ev === 'synchronized', 'synchronized');
    const seen = sub.handlerEvents('Setting');
    t.same(seen.map((e) => e.ev), ['create', 'create', 'synchronized'], 'the subscriber saw each value once, then synchronized');
    t.same(seen.slice(0, 2).map((e) => e.key).sort(), ['x', 'y'], 'one create per key');
  });
}
