// One file per key, written atomically; loading tolerates interrupted writes
// and corrupt files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { isTempFile, writeFileAtomicSync } from '../../lib/atomic-file';
import { PersistentStore } from '../../pubsub/persistent-store';

function tmp(t: tap.Test): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-store-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}

/** Every file name and its content, to show that a load changed nothing. */
function listing(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) out[name] = fs.readFileSync(path.join(dir, name), 'utf8');
  return out;
}

const loadAll = (store: PersistentStore): Record<string, unknown> => Object.fromEntries(store.load().entries);

t.test('dirFor is <persist>/status/<owner>/<Type>', async (t) => {
  t.equal(PersistentStore.dirFor('/persist', 'nim', 'DevicePortConfigList'), '/persist/status/nim/DevicePortConfigList');
});

t.test('loading a directory that does not exist yet gives nothing', async (t) => {
  const store = new PersistentStore(path.join(tmp(t), 'not', 'there'));
  t.same(store.load(), { entries: new Map(), corrupt: [] });
  t.same(store.load({ readOnly: true }), { entries: new Map(), corrupt: [] });
  t.notOk(fs.existsSync(store.dir), 'loading does not create it');
});

t.test('any key maps to a safe file directly inside the directory', async (t) => {
  const root = tmp(t);
  const store = new PersistentStore(path.join(root, 'status', 'nim', 'T'));
  const keys = [
    'plain',
    'a/b',
    'a%2Fb',
    '../../etc/passwd',
    '/absolute',
    '.',
    '..',
    '.hidden',
    '.looks.like.a.tmp',
    'ünï©ødé ✓',
    '日本語のキー',
    '🚀/🛰',
    'with space and "quotes" and \\ backslash',
    'CON',
    'x'.repeat(66), // 66 chars: fits
    '%'.repeat(66), // 198 encoded chars: still fits
    '%'.repeat(67), // 201 encoded chars: hashed
    'é'.repeat(34), // 204 encoded chars: hashed
    'k'.repeat(200),
  ];
  keys.forEach((key, i) => store.write(key, JSON.stringify({ i })));
  const files = fs.readdirSync(store.dir);
  t.equal(files.length, keys.length, 'one file per key, no collisions');
  for (const key of keys) {
    const file = store.fileFor(key);
    const name = path.basename(file);
    const label = JSON.stringify(key.length > 20 ? key.slice(0, 8) + '…' : key);
    t.ok(path.dirname(file) === store.dir && Buffer.byteLength(name) <= 255 && name.endsWith('.json') && !isTempFile(name),
      `${label}: a usable name in the directory`);
  }
  t.same(loadAll(store), Object.fromEntries(keys.map((k, i) => [k, { i }])), 'every key reads back exactly');
  t.same(fs.readdirSync(root), ['status'], 'nothing written outside the directory');
});

t.test('long keys are hashed to fixed-size names', async (t) => {
  const store = new PersistentStore(tmp(t));
  const long1 = 'a'.repeat(201);
  const long2 = 'a'.repeat(200) + 'b';
  const uni = 'ключ'.repeat(20); // 80 characters, 640 encoded
  for (const key of [long1, long2, uni]) {
    t.match(path.basename(store.fileFor(key)), /^sha256-[0-9a-f]{64}\.json$/, `${key.length}-char key`);
  }
  t.not(store.fileFor(long1), store.fileFor(long2), 'different keys, different hashes');
  t.equal(store.fileFor(long1), store.fileFor('a'.repeat(201)), 'stable');
  t.equal(path.basename(store.fileFor('a'.repeat(200))), 'a'.repeat(200) + '.json', '200 encoded characters are not hashed');
  store.write(long1, '1');
  store.write(long2, '2');
  store.write(uni, '"u"');
  t.same(loadAll(store), { [long1]: 1, [long2]: 2, [uni]: 'u' }, 'the key comes from the file content, not its name');
});

t.test('write, overwrite and remove', async (t) => {
  const store = new PersistentStore(path.join(tmp(t), 'deep', 'dir'));
  store.write('k', '{"v":1}');
  t.equal(fs.readFileSync(store.fileFor('k'), 'utf8'), '{"key":"k","value":{"v":1}}\n', 'file holds {key, value}');
  t.equal(fs.statSync(store.fileFor('k')).mode & 0o777, 0o600, 'readable by the owner only');
  store.write('k', '{"v":2}');
  t.same(listing(store.dir), { 'k.json': '{"key":"k","value":{"v":2}}\n' }, 'overwritten in place, no temporary file left');
  store.write('a/b', 'null');
  t.same(loadAll(store), { k: { v: 2 }, 'a/b': null }, 'null is a value');
  store.remove('k');
  t.same(loadAll(store), { 'a/b': null });
  t.doesNotThrow(() => store.remove('k'), 'removing twice is fine');
  t.doesNotThrow(() => store.remove('never'), 'removing an unknown key is fine');
});

t.test('temporary files from interrupted writes', async (t) => {
  const store = new PersistentStore(tmp(t));
  store.write('k', '1');
  // What writeFileAtomicSync leaves when the process dies before the rename.
  const tmpName = `.${path.basename(store.fileFor('k'))}.4242.tmp`;
  t.ok(isTempFile(tmpName));
  fs.writeFileSync(path.join(store.dir, tmpName), '{"key":"k","value":2}\n');
  fs.writeFileSync(path.join(store.dir, '.torn.json.7.tmp'), '{"key":"to');

  t.test('a read-only load ignores them and leaves them', async (t) => {
    const before = listing(store.dir);
    const r = store.load({ readOnly: true });
    t.same(Object.fromEntries(r.entries), { k: 1 }, 'the target keeps the old value');
    t.same(r.corrupt, []);
    t.same(listing(store.dir), before);
  });

  t.test('the owner\'s load removes them', async (t) => {
    const r = store.load();
    t.same(Object.fromEntries(r.entries), { k: 1 });
    t.same(r.corrupt, []);
    t.same(Object.keys(listing(store.dir)), ['k.json']);
  });
});

t.test('corrupt files', async (t) => {
  const cases: Array<[string, string]> = [
    ['torn.json', '{"key":"torn","val'],
    ['empty.json', ''],
    ['nokey.json', '{"value":1}'],
    ['numkey.json', '{"key":5,"value":1}'],
    ['novalue.json', '{"key":"novalue"}'],
    ['null.json', 'null'],
    ['array.json', '[1,2]'],
    ['binary.json', '\u0000\u0001\u00ff'],
  ];
  function setup(t: tap.Test): PersistentStore {
    const store = new PersistentStore(tmp(t));
    store.write('good', '{"ok":true}');
    for (const [name, content] of cases) fs.writeFileSync(path.join(store.dir, name), content);
    fs.writeFileSync(path.join(store.dir, 'notes.txt'), 'not a value'); // not ours: ignored
    return store;
  }

  t.test('the owner\'s load reports them and moves them aside', async (t) => {
    const store = setup(t);
    const r = store.load();
    t.same(Object.fromEntries(r.entries), { good: { ok: true } });
    t.same(r.corrupt.map((c) => path.basename(c.file)).sort(), cases.map(([n]) => n).sort());
    t.ok(r.corrupt.every((c) => path.isAbsolute(c.file) && typeof c.error === 'string' && c.error.length > 0), 'each with a reason');
    const names = fs.readdirSync(store.dir).sort();
    t.same(names, ['good.json', 'notes.txt', ...cases.map(([n]) => n + '.corrupt')].sort());
    for (const [name, content] of cases) {
      t.equal(fs.readFileSync(path.join(store.dir, name + '.corrupt'), 'utf8'), content, `${name} kept for inspection`);
    }
    const again = store.load();
    t.same(again.corrupt, [], 'reported once');
    t.same(Object.fromEntries(again.entries), { good: { ok: true } });
  });

  t.test('a read-only load reports them and changes nothing on disk', async (t) => {
    const store = setup(t);
    const before = listing(store.dir);
    const r = store.load({ readOnly: true });
    t.same(Object.fromEntries(r.entries), { good: { ok: true } });
    t.equal(r.corrupt.length, cases.length);
    t.same(listing(store.dir), before);
    t.equal(store.load({ readOnly: true }).corrupt.length, cases.length, 'still there for the owner');
  });
});

t.test('writeFileAtomicSync replaces a file without leaving temporaries', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'f.json');
  writeFileAtomicSync(file, 'one');
  writeFileAtomicSync(file, Buffer.from('two'));
  t.same(listing(dir), { 'f.json': 'two' });
  t.ok(isTempFile(`.f.json.${process.pid}.tmp`));
  for (const name of ['f.json', '.f.json', 'f.tmp', '.tmp.json']) t.notOk(isTempFile(name), name);
});
