// The published JSON Schema of the device config is the one the device validates with.
import * as fs from 'node:fs';
import t from 'tap';
import { SCHEMA_FILE, deviceConfigSchemaText } from '../../scripts/device-config-schema';

t.test('docs/device-config.schema.json matches the schema zedagent checks configs against', async (t) => {
  t.equal(fs.readFileSync(SCHEMA_FILE, 'utf8'), deviceConfigSchemaText(), 'up to date (regenerate with `make schema`)');
  const schema = JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8')) as { properties: Record<string, unknown>; required: string[] };
  t.same(schema.required, ['version'], 'only the version is required');
  t.ok(schema.properties.apps && schema.properties.volumes && schema.properties.contentTrees && schema.properties.datastores, 'it describes apps, volumes, content trees and datastores');
});
