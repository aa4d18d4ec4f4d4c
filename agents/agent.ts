// The contract between an agent and the process that runs it: what an agent
// is, and the context it runs with. An agent is a value (name,
// help, run function); everything it touches comes through its context, so the
// supervisor can stop it and release all it held when it crashes.
import type { Static, TSchema } from '@sinclair/typebox';
import type { Dirs } from '../lib/dirs';
import type { Logger } from '../lib/log';
import type { AgentSettings } from '../lib/settings';
import type { CollectionSpec } from '../pubsub/catalog';
import type { Publication } from '../pubsub/publication';
import type { Subscription, SubscribeOptions } from '../pubsub/subscription';

export interface AgentContext {
  readonly name: string;
  readonly log: Logger;
  readonly dirs: Dirs;
  /** Aborted when the agent must stop (shutdown or crash); run() should then return. */
  readonly signal: AbortSignal;
  readonly settings: AgentSettings;
  /** A publication of a collection this agent owns. */
  publish<S extends TSchema>(type: string | CollectionSpec<S>): Publication<S>;
  subscribe<S extends TSchema>(
    type: string | CollectionSpec<S>,
    handlers: Omit<SubscribeOptions<Readonly<Static<S>>>, 'agent' | 'onHandlerError'>,
  ): Subscription<S>;
  /** Timers that are cleared when the agent stops or crashes. */
  setInterval(fn: () => void, ms: number): NodeJS.Timeout;
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
}

export interface AgentSpec {
  readonly name: string;
  /** One line for the list of agents. */
  readonly summary: string;
  /** The text of `<agent> --help` after the common options. */
  readonly help: string;
  /** Runs until ctx.signal aborts. Throwing or returning early counts as a crash. */
  run(ctx: AgentContext): Promise<void>;
}

/** Resolves when the signal aborts: the body of an agent with nothing else to do. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
