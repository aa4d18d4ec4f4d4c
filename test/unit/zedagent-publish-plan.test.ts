// The publish diff: a config becomes collections, and only changes make steps.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { desiredValues, oversizedValues, planPublish, type ConfigType, type PublishStep } from '../../agents/zedagent/publish-plan';
import { CATALOG } from '../../pubsub/collections';
import type { DeviceConfig } from '../../pubsub/collections/config';

const example = JSON.parse(fs.readFileSync(path.join(__dirname, '../../docs/examples/device-config.json'), 'utf8')) as DeviceConfig;
const copy = (): DeviceConfig => JSON.parse(JSON.stringify(example)) as DeviceConfig;

/** Applies steps to a published state, as the driver does. */
function apply(state: Map<ConfigType, Map<string, string>>, steps: PublishStep[]): Map<ConfigType, Map<string, string>> {
  for (const s of steps) {
    let m = state.get(s.type);
    if (!m) state.set(s.type, (m = new Map()));
    if (s.op === 'publish') m.set(s.key, JSON.stringify(s.value));
    else m.delete(s.key);
  }
  return state;
}
const brief = (steps: PublishStep[]) => steps.map((s) => `${s.op} ${s.type}/${s.key}`);

t.test('a config becomes valid collection values, with generations on volume refs and defaults filled in', async (t) => {
  const c = copy();
  c.volumes![2]!.generation = 3;
  const d = desiredValues(c);
  for (const [type, values] of Object.entries(d) as [ConfigType, Map<string, unknown>][]) {
    const spec = CATALOG.get(type)!;
    for (const [key, v] of values) {
      t.ok(spec.check.Check(v), `${type}/${key} matches its schema`);
      t.equal(spec.keyOf?.(v as never), key, `${type}/${key} is keyed by its own key`);
    }
  }
  const notes = d.AppInstanceConfig.get('a0c1d2e3-0002-4f00-9000-000000000002')!;
  t.same(notes.volumeRefs.map((r) => r.generation), [0, 3]);
  t.equal(notes.configVersion, '1');
  t.ok(d.VolumeConfig.has('7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03#3'), 'VolumeConfig keyed id#generation');
  const items = d.ConfigItemValueMap.get('global')!.items;
  t.equal(items['timer.download.retry'], '30', 'the config value');
  t.equal(items['download.max.concurrent'], '3', 'the default');
});

t.test('first apply publishes everything in dependency order; the same config again makes no step', async (t) => {
  const first = planPublish(new Map(), desiredValues(copy()));
  t.ok(first.every((s) => s.op === 'publish'));
  const order = [...new Set(first.map((s) => s.type))];
  t.same(order, ['ConfigItemValueMap', 'PublisherKeys', 'DatastoreConfig', 'ContentTreeConfig', 'VolumeConfig', 'AppInstanceConfig']);
  const state = apply(new Map(), first);
  t.same(planPublish(state, desiredValues(copy())), []);
});

t.test('a change publishes only what changed; removals unpublish, apps before volumes', async (t) => {
  const state = apply(new Map(), planPublish(new Map(), desiredValues(copy())));
  const c = copy();
  c.apps![0]!.restartCounter = 1;
  t.same(brief(planPublish(state, desiredValues(c))), ['publish AppInstanceConfig/a0c1d2e3-0001-4f00-9000-000000000001']);

  const v2 = copy();
  v2.version = '2';
  const published = new Map([...(state.get('AppInstanceConfig') ?? new Map<string, string>())].map(([k, v]) => [k, JSON.parse(v)]));
  t.same(planPublish(state, desiredValues(v2, published)), [], 'a new version alone touches no app: work follows the change');
  const v3 = copy();
  v3.version = '3';
  v3.apps![1]!.env = { CHANGED: '1' };
  const steps = planPublish(state, desiredValues(v3, published));
  t.same(brief(steps), ['publish AppInstanceConfig/a0c1d2e3-0002-4f00-9000-000000000002'], 'only the changed app');
  t.equal((steps[0] as { value: { configVersion: string } }).value.configVersion, '3', 'which carries the version that changed it');

  const fewer = copy();
  fewer.apps = [fewer.apps![0]!];
  fewer.volumes = fewer.volumes!.slice(0, 1);
  t.same(brief(planPublish(state, desiredValues(fewer))), [
    'unpublish AppInstanceConfig/a0c1d2e3-0002-4f00-9000-000000000002',
    'unpublish VolumeConfig/7b6a7e1c-2222-4c1e-8a3d-6f1e2d3c4b02#0',
    'unpublish VolumeConfig/7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03#0',
  ]);

  const regen = copy();
  regen.volumes![2]!.generation = 1;
  t.same(brief(planPublish(state, desiredValues(regen))), [
    'publish VolumeConfig/7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03#1',
    'publish AppInstanceConfig/a0c1d2e3-0002-4f00-9000-000000000002',
    'unpublish VolumeConfig/7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03#0',
  ], 'a new generation is a new volume key; the old one goes after the app moved');
});

t.test('a value too large for its collection is found before anything is published', async (t) => {
  const c = copy();
  c.apps![1]!.env = { BIG: 'x'.repeat(300 * 1024) };
  const steps = planPublish(new Map(), desiredValues(c));
  const limit = (type: ConfigType) => CATALOG.get(type)!.maxValueBytes;
  const errors = oversizedValues(steps, limit);
  t.equal(errors.length, 1);
  t.equal(errors[0]!.path, '/apps');
  t.match(errors[0]!.message, /^AppInstanceConfig a0c1d2e3-0002-4f00-9000-000000000002 would be \d+ bytes; the limit is 262144$/);
  t.same(oversizedValues(planPublish(new Map(), desiredValues(copy())), limit), []);
});
