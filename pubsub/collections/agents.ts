// Collections every process publishes about the agents it runs.
import { Type, type Static } from '@sinclair/typebox';
import { defineCollection } from '../catalog';
import { EVERY_AGENT } from '../owners';

export const AgentState = Type.Union([
  Type.Literal('starting'),
  Type.Literal('running'),
  Type.Literal('backoff'),
  Type.Literal('failed'),
  Type.Literal('stopping'),
]);

export const AgentStatusSchema = Type.Object(
  {
    agent: Type.String({ minLength: 1 }),
    pid: Type.Integer({ minimum: 1 }),
    /** "all": one of many agents in a shared zedbox process; "alone": its own process. */
    mode: Type.Union([Type.Literal('all'), Type.Literal('alone')]),
    version: Type.String(),
    state: AgentState,
    /** When this process started the agent (RFC 3339). */
    startedAt: Type.String(),
    /** Last liveness proof (RFC 3339); also the mtime of <run>/<agent>.touch. */
    aliveAt: Type.String(),
    /** Crashes in the current window; the supervisor stops restarting at the cap. */
    crashes: Type.Integer({ minimum: 0 }),
    restarts: Type.Integer({ minimum: 0 }),
    lastError: Type.Optional(Type.String()),
    lastErrorAt: Type.Optional(Type.String()),
    nextRestartAt: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type AgentStatus = Static<typeof AgentStatusSchema>;

export const AgentStatusCollection = defineCollection({
  type: 'AgentStatus',
  owner: EVERY_AGENT,
  schema: AgentStatusSchema,
  description: 'Liveness and crash record of one agent, published by the agent about itself, keyed by agent name',
  keyOf: (v) => v.agent,
});
