// docs/device-config.md stays true: its config item table is CONFIG_ITEMS, and it
// describes every field of the schema.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import type { TSchema } from '@sinclair/typebox';
import { CONFIG_ITEMS } from '../../pubsub/collections/config-items';
import { DeviceConfigSchema } from '../../pubsub/collections/config';

const doc = fs.readFileSync(path.join(__dirname, '../../docs/device-config.md'), 'utf8');

t.test('the config item table is CONFIG_ITEMS, row for row', async (t) => {
  const rows = doc.split('\n').filter((l) => /^\| `[a-z]+\.[a-z.]+` \|/.test(l));
  const want = Object.entries(CONFIG_ITEMS).map(([k, d]) => {
    const def = d as { default: number | boolean | string; min?: number; max?: number; values?: readonly string[]; description: string };
    const range = typeof def.default === 'boolean' ? 'true or false' : typeof def.default === 'string' ? def.values!.join(', ') : `${def.min} to ${def.max}`;
    return `| \`${k}\` | ${def.default} | ${range} | ${def.description} |`;
  });
  t.same(rows, want);
});

t.test('every field of the schema is described', async (t) => {
  const names = new Set<string>();
  const walk = (s: TSchema) => {
    if (s.properties) for (const [k, v] of Object.entries(s.properties as Record<string, TSchema>)) { names.add(k); walk(v); }
    if (s.items) walk(s.items as TSchema);
    for (const b of (s.anyOf ?? []) as TSchema[]) walk(b);
  };
  walk(DeviceConfigSchema);
  const missing = [...names].filter((n) => !doc.includes(`\`${n}\``));
  t.same(missing, [], 'fields not mentioned in docs/device-config.md');
});
