// What counts as gone after a restart: reported before, reported by nothing now,
// and not named by the config in force. And the set is kept across restarts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { ReportedKeys, expectedKeys, staleKeys } from '../../agents/zedagent/reported-keys';

t.test('stale keys', async (t) => {
  const expected = expectedKeys({ apps: ['a1'], volumes: [{ id: 'v1', name: 'v', origin: { type: 'blank' } }], contentTrees: ['c1'], networkInstances: [] });
  const prior = ['device/global', 'config/global', 'app/a1', 'app/a2', 'volume/v1', 'volume/v2', 'contentTree/c1', 'networkInstance/n1'];
  const reported = new Set(['device/global', 'app/a1']);
  t.same(staleKeys(prior, (k) => reported.has(k), expected), ['app/a2', 'volume/v2', 'networkInstance/n1'],
    'only objects neither reported now nor named by the config (a named one may just have no status yet)');
});

t.test('the set survives a restart and is written only when it changes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rk-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const a = ReportedKeys.at(dir);
  t.equal(a.prior, undefined, 'nothing from before on a first start');
  a.save(['app/x', 'device/global']);
  const file = path.join(dir, 'status', 'zedagent', 'reported-keys.json');
  const mtime = fs.statSync(file).mtimeMs;
  a.save(['device/global', 'app/x']);
  t.equal(fs.statSync(file).mtimeMs, mtime, 'the same set is not written again');
  const b = ReportedKeys.at(dir);
  t.same([...(b.prior ?? [])].sort(), ['app/x', 'device/global'], 'the next start knows what was reported');
  b.save(['device/global']);
  t.same(JSON.parse(fs.readFileSync(file, 'utf8')), ['app/x', 'device/global'], 'unsettled prior keys stay on disk until settled');
});
