// How a collection type is declared: schema, owner, key, persistence, size limit.
// The product's own declarations live in ./collections/ (one place for every type);
// tests and benchmarks build catalogues of their own with the same function.
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { Owner } from './owners';

/** Values larger than this are refused unless a collection declares its own limit. */
export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024;
/** No collection may declare more: a snapshot must stay sendable in one message. */
export const HARD_MAX_VALUE_BYTES = 4 * 1024 * 1024;
export const MAX_KEY_BYTES = 200;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export interface CollectionSpec<S extends TSchema = TSchema> {
  /** Type name, the topic on the bus (EVE: the Go type name). */
  readonly type: string;
  /** The agent allowed to publish it, or EVERY_AGENT for self-reports keyed by agent name. */
  readonly owner: Owner;
  readonly schema: S;
  readonly description: string;
  /** Where the key comes from; publish(key, value) checks the value agrees. */
  keyOf?(value: Static<S>): string;
  /** Survives process and machine restarts (written atomically under the persist dir). */
  readonly persistent: boolean;
  readonly maxValueBytes: number;
  readonly check: TypeCheck<S>;
}

export interface CollectionDecl<S extends TSchema> {
  type: string;
  owner: Owner;
  schema: S;
  description: string;
  keyOf?: (value: Static<S>) => string;
  persistent?: boolean;
  maxValueBytes?: number;
}

const TYPE_NAME = /^[A-Z][A-Za-z0-9]{0,79}$/;

export function defineCollection<S extends TSchema>(decl: CollectionDecl<S>): CollectionSpec<S> {
  if (!TYPE_NAME.test(decl.type)) throw new Error(`collection type "${decl.type}" must be PascalCase letters and digits`);
  const maxValueBytes = decl.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  if (maxValueBytes > HARD_MAX_VALUE_BYTES) {
    throw new Error(`collection ${decl.type}: maxValueBytes ${maxValueBytes} exceeds the bus limit ${HARD_MAX_VALUE_BYTES}`);
  }
  return {
    type: decl.type,
    owner: decl.owner,
    schema: decl.schema,
    description: decl.description,
    keyOf: decl.keyOf,
    persistent: decl.persistent ?? false,
    maxValueBytes,
    check: TypeCompiler.Compile(decl.schema),
  };
}

export type Catalog = ReadonlyMap<string, CollectionSpec>;

export function makeCatalog(specs: readonly CollectionSpec[]): Catalog {
  const map = new Map<string, CollectionSpec>();
  for (const spec of specs) {
    if (map.has(spec.type)) throw new Error(`collection ${spec.type} is declared twice`);
    map.set(spec.type, spec);
  }
  return map;
}

/** The schema errors of a value, as "path: message" strings naming each bad field. */
export function schemaErrors<S extends TSchema>(spec: CollectionSpec<S>, value: unknown, limit = 5): string[] {
  const out: string[] = [];
  for (const err of spec.check.Errors(value)) {
    out.push(`${err.path || '/'}: ${err.message}`);
    if (out.length >= limit) break;
  }
  return out;
}

/** Why a key is unusable, or undefined when it is fine. */
export function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'key must be a non-empty string';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `key is longer than ${MAX_KEY_BYTES} bytes`;
  if (/[\u0000-\u001f]/.test(key)) return 'key contains a control character';
  // A lone surrogate has no UTF-8 form: two such keys would arrive as the same key.
  if (LONE_SURROGATE.test(key)) return 'key is not well-formed Unicode (lone surrogate)';
  return undefined;
}
