// The device config document: text in, a config or every reason it is refused
// out. Pure: JSON syntax (with line and column), the schema (every bad field by
// path), then the rules the schema cannot say (references, duplicates, config
// items). A config is applied whole or not at all.
import { createHash } from 'node:crypto';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { ValueError } from '@sinclair/typebox/errors';
import { DIGEST_PATTERN, UUID_PATTERN } from '../../pubsub/collections/common';
import { DeviceConfigSchema, type DeviceConfig } from '../../pubsub/collections/config';
import { configItemProblem, isKnownConfigItem } from '../../pubsub/collections/config-items';
import { checkRules } from './config-rules';
import { jsonErrorOffset, lineColumn } from './json-position';

export interface FieldError { path: string; message: string }

export interface ParsedConfig {
  /** Present only when there is no error at all. */
  config?: DeviceConfig;
  errors: FieldError[];
  /** configItems keys the device does not know (reported, not fatal). */
  unknownConfigItems: string[];
  sha256: string;
}

const check = TypeCompiler.Compile(DeviceConfigSchema);

export function parseDeviceConfig(text: string): ParsedConfig {
  const sha256 = createHash('sha256').update(text).digest('hex');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { errors: [jsonError(text, (err as Error).message)], unknownConfigItems: [], sha256 };
  }
  if (!check.Check(value)) return { errors: schemaErrors(value), unknownConfigItems: [], sha256 };
  const config = value;
  const errors = checkRules(config);
  const unknownConfigItems: string[] = [];
  for (const [key, raw] of Object.entries(config.configItems ?? {})) {
    if (!isKnownConfigItem(key)) unknownConfigItems.push(key);
    else {
      const problem = configItemProblem(key, raw);
      if (problem) errors.push({ path: `/configItems/${escapePointer(key)}`, message: `${JSON.stringify(raw)} ${problem}` });
    }
  }
  return errors.length ? { errors, unknownConfigItems, sha256 } : { config, errors, unknownConfigItems, sha256 };
}

/** JSON.parse does not always say where; people fixing a file by hand want a line and a column. */
function jsonError(text: string, message: string): FieldError {
  const m = /at position (\d+)/.exec(message);
  const pos = m ? Number(m[1]) : jsonErrorOffset(text) ?? text.length;
  const { line, column } = lineColumn(text, pos);
  const what = message.replace(/ in JSON at position \d+.*$/, '').replace(/, "[\s\S]*" is not valid JSON$/, '');
  return { path: '', message: `invalid JSON at line ${line}, column ${column}: ${what}` };
}

function schemaErrors(value: unknown): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  const add = (path: string, message: string) => {
    const k = `${path}\0${message}`;
    if (!seen.has(k)) { seen.add(k); out.push({ path, message }); }
  };
  const visit = (e: ValueError) => {
    const branches = (e.schema as { anyOf?: TSchema[] }).anyOf;
    if (branches) return visitUnion(e, branches, visit, add);
    add(e.path, friendly(e));
  };
  for (const e of check.Errors(value)) visit(e);
  // A missing field is reported once, not also as the wrong type.
  const missing = new Set(out.filter((e) => e.message === 'Expected required property').map((e) => e.path));
  return out.filter((e) => !missing.has(e.path) || e.message === 'Expected required property');
}

/** A union of literals names its choices; a union of objects tagged by `type` reports the matching branch. */
function visitUnion(e: ValueError, branches: TSchema[], visit: (e: ValueError) => void, add: (p: string, m: string) => void): void {
  const consts = branches.map((b) => (b as { const?: unknown }).const);
  if (consts.every((c) => c !== undefined)) return add(e.path, `Expected one of ${consts.map((c) => JSON.stringify(c)).join(', ')}`);
  const tags: unknown[] = branches.map((b) => (b as { properties?: { type?: { const?: unknown } } }).properties?.type?.const);
  const given: unknown = e.value;
  if (tags.every((c) => c !== undefined) && typeof given === 'object' && given !== null) {
    const tag: unknown = (given as Record<string, unknown>).type;
    const i = tags.findIndex((c) => c === tag);
    if (i < 0) return add(`${e.path}/type`, `Expected one of ${tags.map((c) => JSON.stringify(c)).join(', ')}`);
    for (const sub of e.errors[i] ?? []) visit(sub);
    return;
  }
  add(e.path, 'Expected a value of one of the allowed forms');
}

function friendly(e: ValueError): string {
  if (e.value === undefined) return 'Expected required property';
  const pattern = (e.schema as { pattern?: string }).pattern;
  if (pattern === UUID_PATTERN) return `Expected a UUID (8-4-4-4-12 hex digits), got ${JSON.stringify(e.value)}`;
  if (pattern === DIGEST_PATTERN) return `Expected sha256:<64 lowercase hex digits>, got ${JSON.stringify(e.value)}`;
  return e.message;
}

export function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
