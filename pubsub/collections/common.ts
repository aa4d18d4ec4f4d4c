// Shapes shared by the app pipeline's collections: EVE's state order, error
// records, identifiers and digests.
import { Type, type Static } from '@sinclair/typebox';

/**
 * EVE's SwState, in EVE's order. The order matters: an app's state while it installs
 * is the least advanced state of its volumes, and "at least LOADED" is a comparison.
 * The JSON carries names (readable in ipcmonitor); SW_STATE_VALUE gives EVE's numbers.
 */
export const SW_STATES = [
  'INITIAL', 'RESOLVING_TAG', 'RESOLVED_TAG', 'DOWNLOADING', 'DOWNLOADED', 'VERIFYING', 'VERIFIED',
  'LOADING', 'LOADED', 'CREATING_VOLUME', 'CREATED_VOLUME', 'INSTALLED', 'AWAITNETWORKINSTANCE',
  'START_DELAYED', 'BOOTING', 'RUNNING', 'PAUSING', 'PAUSED', 'HALTING', 'HALTED', 'BROKEN', 'UNKNOWN',
  'PENDING', 'SCHEDULING', 'FAILED', 'REMOTELOADED',
] as const;
export type SwState = (typeof SW_STATES)[number];
export const SwStateSchema = Type.Union(SW_STATES.map((s) => Type.Literal(s)));

/** EVE's numeric value (INITIAL = 100 … REMOTELOADED = 125). */
export const SW_STATE_VALUE: Readonly<Record<SwState, number>> = Object.fromEntries(
  SW_STATES.map((s, i) => [s, 100 + i]),
) as Record<SwState, number>;

export function stateOrder(s: SwState): number {
  return SW_STATE_VALUE[s];
}

/** The least advanced of some states (INITIAL when there are none). */
export function minState(states: Iterable<SwState>): SwState {
  let min: SwState | undefined;
  for (const s of states) if (min === undefined || stateOrder(s) < stateOrder(min)) min = s;
  return min ?? 'INITIAL';
}

export const Severity = Type.Union([Type.Literal('notice'), Type.Literal('warning'), Type.Literal('error')]);
export type Severity = Static<typeof Severity>;

/** EVE's ErrorDescription: what failed, when, how badly, when it will be retried, and on what. */
export const ErrorInfoSchema = Type.Object(
  {
    error: Type.String({ minLength: 1 }),
    /** RFC 3339 time the error was first seen in its current form. */
    time: Type.String(),
    severity: Severity,
    /** e.g. "will retry in 60 s; retried 3 times", or "fix the config". */
    retryCondition: Type.Optional(Type.String()),
    /** The objects the error is about: {type: 'contentTree', id}, {type: 'blob', id: 'sha256:…'}. */
    entities: Type.Optional(Type.Array(Type.Object({ type: Type.String(), id: Type.String() }, { additionalProperties: false }))),
    /** The collection that set it (EVE's ErrorSourceType), so an agent clears only its own. */
    source: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type ErrorInfo = Static<typeof ErrorInfoSchema>;

/** EVE's GetErrorSeverity: errors that persist grow more severe. */
export function severityFor(retryCount: number, elapsedMs: number): Severity {
  const hour = 3600_000;
  if (retryCount > 20 || elapsedMs > 10 * hour) return 'error';
  if (retryCount > 10 || elapsedMs > hour) return 'warning';
  return 'notice';
}

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const Uuid = Type.String({ pattern: UUID_PATTERN });

/** A content digest as registries write it: sha256:<64 lowercase hex>. */
export const DIGEST_PATTERN = '^sha256:[0-9a-f]{64}$';
export const Digest = Type.String({ pattern: DIGEST_PATTERN });

export const Counter = Type.Integer({ minimum: 0 });
export const Time = Type.String({ description: 'RFC 3339' });
