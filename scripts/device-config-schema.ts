// Writes docs/device-config.schema.json: the device config's JSON Schema, taken
// from the TypeBox declaration the device validates with, so any JSON Schema
// tool checks a config the way zedbox does. `make schema`; a unit test keeps it current.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeviceConfigSchema } from '../pubsub/collections/config';

export function deviceConfigSchemaText(): string {
  const schema = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'zedbox device config',
    ...JSON.parse(JSON.stringify(DeviceConfigSchema)),
  };
  return JSON.stringify(schema, null, 2) + '\n';
}

export const SCHEMA_FILE = path.join(__dirname, '..', 'docs', 'device-config.schema.json');

if (require.main === module) {
  fs.writeFileSync(SCHEMA_FILE, deviceConfigSchemaText());
  process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`);
}
