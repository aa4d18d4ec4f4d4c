// zedagent with a real config file on disk and a real bus: apply, change (an
// editor's write-and-rename), a bad edit refused with every field named while the
// previous config stays published, and a restart on a broken file that runs the
// checkpoint.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { zedagent } from '../../agents/zedagent/main';
import {
  AppInstanceConfigCollection, ConfigItemValueMapCollection, DeviceConfigStatusCollection, VolumeConfigCollection,
  type DeviceConfig,
} from '../../pubsub/collections';
import { freshDirs, startAgents } from '../lib/agent-harness';

const example = fs.readFileSync(path.join(__dirname, '../../docs/examples/device-config.json'), 'utf8');
const HELLO = 'a0c1d2e3-0001-4f00-9000-000000000001';
const NOTES = 'a0c1d2e3-0002-4f00-9000-000000000002';
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** As editors do: write a temporary file beside it, then rename it over the config. */
function saveLikeAnEditor(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.device-config.json.swp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

t.test('apply, change, refuse a bad edit, restart on the checkpoint', async (t) => {
  const dirs = freshDirs();
  fs.mkdirSync(dirs.config, { recursive: true });
  const file = path.join(dirs.config, 'device-config.json');
  fs.writeFileSync(file, example);

  let h = await startAgents([zedagent], { dirs });
  t.teardown(async () => {
    await h.stop(); // the last harness started
    fs.rmSync(path.dirname(dirs.run), { recursive: true, force: true });
  });
  const status = await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => v?.appliedVersion === '1', 'config 1 applied');
  t.equal(status?.appliedSha256, sha(example));
  t.equal(status?.source, `file:${file}`);
  t.same(status?.fieldErrors, []);
  const apps = h.watch(AppInstanceConfigCollection);
  await h.waitFor(AppInstanceConfigCollection, NOTES, (v) => !!v, 'notes published');
  t.same(apps.keys().sort(), [HELLO, NOTES]);
  t.equal(apps.get(NOTES)?.volumeRefs[1]?.generation, 0);
  t.equal(apps.get(NOTES)?.configVersion, '1');
  await h.waitFor(AppInstanceConfigCollection, HELLO, () => apps.restarted, 'AppInstanceConfig restarted');
  const items = await h.waitFor(ConfigItemValueMapCollection, 'global', (v) => !!v, 'config items');
  t.equal(items?.items['timer.download.retry'], '30');
  t.equal(items?.items['app.stop.timeout'], '10', 'defaults filled in');
  await h.waitFor(VolumeConfigCollection, '7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03#0', (v) => !!v, 'blank volume published');
  t.equal(h.watch(VolumeConfigCollection).keys().length, 3);

  // Change: drop the notes app and its volumes, give hello a restart.
  const v2 = JSON.parse(example) as DeviceConfig;
  v2.version = '2';
  v2.apps = [v2.apps![0]!];
  v2.apps[0]!.restartCounter = 1;
  v2.volumes = v2.volumes!.slice(0, 1);
  const v2Text = JSON.stringify(v2, null, 2);
  saveLikeAnEditor(file, v2Text);
  await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => v?.appliedVersion === '2', 'config 2 applied');
  await h.waitFor(AppInstanceConfigCollection, NOTES, (v) => v === undefined, 'notes unpublished');
  t.equal(apps.get(HELLO)?.restartCounter, 1);
  await h.waitFor(VolumeConfigCollection, '7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03#0', (v) => !v, 'blank volume unpublished');
  t.same(h.watch(VolumeConfigCollection).keys(), ['7b6a7e1c-1111-4c1e-8a3d-6f1e2d3c4b01#0']);
  t.ok(fs.existsSync(path.join(dirs.persist, 'checkpoint', 'device-config.json')), 'checkpoint written');

  // A bad edit: refused whole, every field named, version 2 stays.
  const bad = JSON.parse(v2Text) as Record<string, any>;
  bad.version = '3';
  bad.apps[0].resources.memoryMiB = 2;
  bad.apps[0].volumeRefs[0].volumeId = '99999999-9999-4999-8999-999999999999';
  bad.apps[0].name = 'hello world';
  const badText = JSON.stringify(bad);
  saveLikeAnEditor(file, badText);
  const refused = await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => v?.rejectedSha256 === sha(badText), 'config 3 refused');
  t.same(refused?.fieldErrors.map((e) => e.path).sort(), ['/apps/0/name', '/apps/0/resources/memoryMiB'], 'schema errors first (references are checked once the shape is right)');
  t.match(refused?.fieldErrors.find((e) => e.path === '/apps/0/resources/memoryMiB')?.message, 'Expected integer to be greater or equal to 4');
  t.equal(refused?.appliedVersion, '2', 'still applied');
  t.equal(refused?.error?.severity, 'error');
  t.match(refused?.error?.error, /config file refused \(2 errors\)/);
  t.equal(apps.get(HELLO)?.configVersion, '2', 'the previous config stays published');
  t.equal(apps.get(HELLO)?.resources.memoryMiB, 32);

  // A JSON syntax error too.
  saveLikeAnEditor(file, '{\n  "version": "4",\n  "apps": [\n}\n');
  const syntax = await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => /invalid JSON/.test(v?.fieldErrors[0]?.message ?? ''), 'syntax error reported');
  t.match(syntax?.fieldErrors[0]?.message, /^invalid JSON at line 4, column 1/);

  // Restart with the file broken: the checkpoint (version 2) runs, the refusal is reported.
  await h.stop();
  h = await startAgents([zedagent], { dirs });
  const after = await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => v?.appliedVersion === '2', 'checkpoint applied at start');
  t.match(after?.fieldErrors[0]?.message, /invalid JSON/, 'and the file refusal is reported beside it');
  await h.waitFor(AppInstanceConfigCollection, HELLO, (v) => v?.configVersion === '2', 'hello from the checkpoint');
  t.equal(h.watch(AppInstanceConfigCollection).get(NOTES), undefined);

  // Fixed while running: applied.
  const v5 = { ...v2, version: '5' };
  saveLikeAnEditor(file, JSON.stringify(v5));
  const fixed = await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => v?.appliedVersion === '5', 'fixed file applied');
  t.same(fixed?.fieldErrors, []);
  t.equal(fixed?.error, undefined, 'the refusal is cleared');

  // Restart with the file gone: the checkpoint runs, with a notice.
  await h.stop();
  fs.unlinkSync(file);
  h = await startAgents([zedagent], { dirs });
  const missing = await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => v?.appliedVersion === '5', 'checkpoint applied without a file');
  t.equal(missing?.error?.severity, 'notice');
  t.match(missing?.error?.error, /no config file/);
});

t.test('no file and no checkpoint: nothing applied, config item defaults published', async (t) => {
  const h = await startAgents([zedagent]);
  t.teardown(async () => {
    await h.stop();
    fs.rmSync(path.dirname(h.dirs.run), { recursive: true, force: true });
  });
  const items = await h.waitFor(ConfigItemValueMapCollection, 'global', (v) => !!v, 'defaults');
  t.equal(items?.items['download.max.concurrent'], '3');
  const status = await h.waitFor(DeviceConfigStatusCollection, 'global', (v) => !!v, 'status');
  t.equal(status?.appliedVersion, undefined);
  const apps = h.watch(AppInstanceConfigCollection);
  await apps.whenSynchronized();
  t.same(apps.keys(), []);
  t.equal(apps.restarted, false, 'restarted is signalled only after a config is applied');
});
