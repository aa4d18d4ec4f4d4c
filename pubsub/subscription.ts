// What an agent holds when it subscribes: the handlers it gave, called one at a
// time in order, in the agent's own async context (so the supervisor can tell
// whose code threw), and read access to the replicated state. Events waiting
// behind a slow handler merge per key (event-queue.ts).
import { AsyncResource } from 'node:async_hooks';
import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from '../lib/log';
import type { CollectionSpec } from './catalog';
import { EventQueue } from './event-queue';
import type { Mirror, MirrorEvent } from './mirror';

type Awaitable = void | Promise<void>;

export interface Handlers<T> {
  create?(key: string, value: T): Awaitable;
  modify?(key: string, value: T, old: T): Awaitable;
  delete?(key: string, old: T): Awaitable;
  /** Once, after the first complete state from the publisher. */
  synchronized?(): Awaitable;
  /** Each time the publisher signals its initial work is complete (EVE's restarted). */
  restarted?(counter: number): Awaitable;
}

export interface SubscribeOptions<T> extends Handlers<T> {
  /** Who subscribes, for logs. */
  agent: string;
  /** Required for collections that every agent publishes about itself. */
  owner?: string;
  /** Called when a handler throws; the agent runtime treats it as a crash of that agent. */
  onHandlerError?(err: unknown, where: string): void;
}

export class Subscription<S extends TSchema = TSchema> {
  private mirror!: Mirror;
  private readonly queue = new EventQueue();
  private running = false;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly runInContext: (fn: () => Awaitable) => Awaitable;

  constructor(
    readonly spec: CollectionSpec<S>,
    readonly owner: string,
    private readonly opts: SubscribeOptions<Readonly<Static<S>>>,
    private readonly log: Logger,
    private readonly detach: (sub: Subscription<S>) => void,
  ) {
    if (opts.modify && !opts.create) throw new Error(`${opts.agent}: a modify handler for ${spec.type} needs a create handler`);
    // Bound once here so every later handler call runs in the subscriber's context.
    this.runInContext = AsyncResource.bind((fn: () => Awaitable) => fn());
  }

  /** The link calls this once, before it delivers anything. */
  bindMirror(mirror: Mirror): void {
    this.mirror = mirror;
  }

  get type(): string { return this.spec.type; }
  get synchronized(): boolean { return this.mirror.synchronized; }
  get restartedCounter(): number { return this.mirror.restarted; }
  /** True once the publisher has signalled restarted in its current instance. */
  get restarted(): boolean { return this.mirror.restarted > 0; }

  get(key: string): Readonly<Static<S>> | undefined {
    return this.mirror.entries.get(key) as Readonly<Static<S>> | undefined;
  }

  getAll(): Map<string, Readonly<Static<S>>> {
    return new Map(this.mirror.entries as Map<string, Readonly<Static<S>>>);
  }

  keys(): string[] {
    return [...this.mirror.entries.keys()];
  }

  /** Resolves once the first complete state has been delivered to the handlers. */
  whenSynchronized(signal?: AbortSignal): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.type}: not synchronized before stop`));
      };
      const waiter = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private isSettled(): boolean {
    return this.mirror.synchronized && !this.running && this.queue.size === 0;
  }

  deliver(events: MirrorEvent[]): void {
    if (this.closed || events.length === 0) return;
    for (const e of events) this.queue.push(e);
    if (this.running) return;
    // Never call a handler from inside subscribe() or deliver(): a subscriber that already holds
    // state (another agent of this process subscribed first) would otherwise run handlers before
    // the agent has finished wiring itself up.
    this.running = true;
    queueMicrotask(() => void this.drain());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.clear();
    this.detach(this);
  }

  private async drain(): Promise<void> {
    for (let e = this.queue.shift(); e && !this.closed; e = this.queue.shift()) {
      try {
        await this.runInContext(() => this.call(e));
      } catch (err) {
        const where = `${this.opts.agent}: ${e.kind} handler for ${this.owner}/${this.type}${'key' in e ? '/' + e.key : ''}`;
        this.log.error('subscription handler failed', { where, error: err });
        this.opts.onHandlerError?.(err, where);
      }
    }
    this.running = false;
    if (this.isSettled()) {
      for (const w of this.waiters) w();
      this.waiters.clear();
    }
  }

  private call(e: MirrorEvent): Awaitable {
    const h = this.opts;
    type T = Readonly<Static<S>>;
    switch (e.kind) {
      case 'create': return h.create?.(e.key, e.value as T);
      case 'modify': return h.modify?.(e.key, e.value as T, e.old as T);
      case 'delete': return h.delete?.(e.key, e.old as T);
      case 'synchronized': return h.synchronized?.();
      case 'restarted': return h.restarted?.(e.counter);
    }
  }
}
