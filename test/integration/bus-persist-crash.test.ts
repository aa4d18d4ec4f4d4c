// SIGKILL at random points while a publisher rewrites large persistent values as
// fast as it can: every file must stay parseable and schema-valid, the next
// instance must load every key, and no write that had returned may be lost.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { Setting } from '../fixtures/test-catalog';
import { startPublisher, tempDirs } from '../fixtures/peer';

const ROUNDS = 10;
const KEYS = 6;
const PAD = 30_000; // ~30 KB per value: several write() calls' worth

t.test('random SIGKILLs during rapid large persistent writes never leave a broken file', async (t) => {
  const dirs = tempDirs(t);
  const dir = path.join(dirs.persist, 'status', 'alpha', 'Setting');
  /** Per key, the newest value whose publish had returned (and was reported). */
  const floor = new Map<string, number>();
  let midWrite = 0;

  for (let round = 1; round <= ROUNDS; round++) {
    const pub = await startPublisher(t, `p${round}`, dirs);
    const loaded = await pub.call('publication', { type: 'Setting' });
    const state = (await pub.call('state', { type: 'Setting', side: 'pub' })).entries as Record<string, { n: number; pad?: string }>;
    if (round > 1) t.equal(loaded.loaded, KEYS, `round ${round}: every key is loaded back`);
    for (const [key, min] of floor) {
      if (!((state[key]?.n ?? -1) >= min)) t.fail(`round ${round}: ${key} loaded as ${state[key]?.n}, but write ${min} had returned`);
    }

    // Writes k = i % KEYS get n = start + i; a progress event follows every write.
    const start = round * 1_000_000;
    const from = pub.mark();
    await pub.call('stream', { type: 'Setting', prefix: 'w', keys: KEYS, batch: 1, pad: PAD, start, progress: true });
    // Where to kill is random (each key written at least once), sometimes a moment later.
    const after = KEYS + Math.floor(Math.random() * 40);
    await pub.waitFor((e) => e.ev === 'progress' && Number(e.written) >= after, `${after} writes`, { from });
    if (Math.random() < 0.5) await new Promise((r) => setImmediate(r));
    await pub.kill('SIGKILL');
    const progress = pub.events.slice(from).filter((e) => e.ev === 'progress');
    const written = Math.max(...progress.map((e) => Number(e.written)));
    for (let i = Math.max(0, written - KEYS); i < written; i++) floor.set(`w${i % KEYS}`, start + i);

    // Every .json file parses and holds a valid value; temp files are the only other kind.
    const names = fs.readdirSync(dir);
    if (names.some((n) => n.endsWith('.tmp'))) midWrite++;
    for (const name of names) {
      if (name.startsWith('.') && name.endsWith('.tmp')) continue;
      const text = fs.readFileSync(path.join(dir, name), 'utf8');
      let parsed: { key?: string; value?: unknown } | undefined;
      try {
        parsed = JSON.parse(text) as { key?: string; value?: unknown };
      } catch (err) {
        t.fail(`round ${round}: ${name} is not JSON (${(err as Error).message}), ${text.length} bytes`);
        continue;
      }
      if (!Setting.check.Check(parsed.value) || typeof parsed.key !== 'string') t.fail(`round ${round}: ${name} holds no valid {key, value}`);
    }
  }
  t.comment(`${midWrite} of ${ROUNDS} kills landed inside a write (a temp file was left)`);
  t.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.corrupt')).length, 0, 'no file was ever set aside as corrupt');

  const last = await startPublisher(t, 'last', dirs);
  await last.call('publication', { type: 'Setting' });
  const final = (await last.call('state', { type: 'Setting', side: 'pub' })).entries as Record<string, { n: number; pad?: string }>;
  t.same(Object.keys(final).sort(), [...floor.keys()].sort(), 'the last instance loads every key');
  t.ok([...floor].every(([k, min]) => final[k]!.n >= min && final[k]!.pad?.length === PAD), 'each at or after its last returned write, whole');
  t.same(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'leftover temp files are cleared on load');
});
