// One run of one agent: its context and everything it acquired through it, so a
// crash or a shutdown releases timers, subscriptions and publications at once.
import { AsyncLocalStorage } from 'node:async_hooks';
import { setMaxListeners } from 'node:events';
import type { Dirs } from '../lib/dirs';
import type { Logger } from '../lib/log';
import type { AgentSettings } from '../lib/settings';
import type { Bus } from '../pubsub/bus';
import type { Publication } from '../pubsub/publication';
import type { PublisherEndpoint } from '../pubsub/publisher-endpoint';
import type { Subscription } from '../pubsub/subscription';
import type { AgentContext, AgentSpec } from '../agents/agent';

/** Which agent instance the running code belongs to; follows timers and promises. */
export interface AgentScope {
  agent: string;
  instance: number;
}
export const agentScope = new AsyncLocalStorage<AgentScope>();

let instances = 0;

export interface InstanceDeps {
  bus: Bus;
  endpoint: PublisherEndpoint;
  dirs: Dirs;
  log: Logger;
  settings: AgentSettings;
  /** Reports a failure of this instance (a throwing handler) to the supervisor. */
  fail(err: unknown, where: string): void;
}

export class AgentInstance {
  readonly id = ++instances;
  private readonly abort = new AbortController();
  /** Intervals, cleared when the agent stops (timeouts check `aborted` when they fire). */
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly subs = new Set<Subscription>();
  private readonly pubs = new Set<Publication>();
  private done?: Promise<void>;

  constructor(readonly spec: AgentSpec, private readonly deps: InstanceDeps) {
    // Every wait an agent makes listens on this one signal; many at once is normal, not a leak.
    setMaxListeners(0, this.abort.signal);
  }

  /** Starts run() inside this instance's scope; the promise settles when run() does. */
  start(): Promise<void> {
    const ctx = this.context();
    this.done = agentScope.run({ agent: this.spec.name, instance: this.id }, () => Promise.resolve().then(() => this.spec.run(ctx)));
    return this.done;
  }

  get aborted(): boolean {
    return this.abort.signal.aborted;
  }

  /** Aborts the agent and releases what it holds; waits for run() at most `timeoutMs`. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.release();
    if (!this.done) return true;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      this.done.then(() => true, () => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); }),
    ]);
    clearTimeout(timer);
    return finished;
  }

  /** Synchronous part of stopping: after this the agent can no longer publish or be called. */
  release(): void {
    if (!this.abort.signal.aborted) this.abort.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.subs) s.close();
    this.subs.clear();
    for (const p of this.pubs) p.close();
    this.pubs.clear();
  }

  private context(): AgentContext {
    const { bus, endpoint, dirs, log, settings, fail } = this.deps;
    const self = this;
    const track = (t: NodeJS.Timeout): NodeJS.Timeout => {
      if (self.aborted) clearTimeout(t);
      else self.timers.add(t);
      return t;
    };
    return {
      name: this.spec.name,
      log,
      dirs,
      signal: this.abort.signal,
      settings,
      publish(type) {
        const p = endpoint.publication(type);
        self.pubs.add(p as unknown as Publication);
        return p;
      },
      subscribe(type, handlers) {
        const sub = bus.subscribe(type, { ...handlers, agent: self.spec.name, onHandlerError: fail });
        self.subs.add(sub as unknown as Subscription);
        return sub;
      },
      setInterval: (fn, ms) => track(setInterval(fn, ms)),
      // Not kept in `timers`: an agent that re-arms a timeout with clearTimeout would grow that set
      // without end (a cleared timeout never fires to leave it). One that fires after the agent stopped
      // does nothing instead, and none holds the process open (the bus does that while agents run).
      setTimeout: (fn, ms) => setTimeout(() => { if (!self.aborted) fn(); }, ms).unref(),
    };
  }
}
