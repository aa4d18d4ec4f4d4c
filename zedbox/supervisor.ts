// Runs a set of agents in this process and keeps them running: a crash stops
// only the agent that crashed, which restarts with backoff until it crashes too
// often (then it is reported failed and left stopped). Each running agent proves
// liveness through <run>/<agent>.touch and its AgentStatus on the bus.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { backoffDelay, type BackoffPolicy } from '../lib/backoff';
import type { Dirs } from '../lib/dirs';
import type { Logger } from '../lib/log';
import type { AgentSettings } from '../lib/settings';
import type { Bus } from '../pubsub/bus';
import type { AgentStatus } from '../pubsub/collections';
import { EndpointBusyError } from '../pubsub/errors';
import type { Publication } from '../pubsub/publication';
import type { PublisherEndpoint } from '../pubsub/publisher-endpoint';
import type { AgentSpec } from '../agents/agent';
import { AgentInstance } from './agent-instance';

export interface SupervisorPolicy {
  restart: BackoffPolicy;
  /** This many crashes within crashWindowMs and the agent is left stopped, reported failed. */
  crashLimit: number;
  crashWindowMs: number;
  /** How often running agents touch their liveness file (EVE: 25 s, watchdog at 300 s). */
  touchIntervalMs: number;
  /** Bound on a clean stop of every agent. */
  stopTimeoutMs: number;
  /** How often to retry an agent whose endpoint another process holds. */
  elsewhereRetryMs: number;
}

export const DEFAULT_POLICY: SupervisorPolicy = {
  restart: { minMs: 1000, maxMs: 60_000, jitter: 0.2 },
  crashLimit: 5,
  crashWindowMs: 10 * 60_000,
  touchIntervalMs: 15_000,
  stopTimeoutMs: 5000,
  elsewhereRetryMs: 10_000,
};

interface Slot {
  spec: AgentSpec;
  endpoint?: PublisherEndpoint;
  status?: Publication;
  instance?: AgentInstance;
  state: AgentStatus['state'] | 'elsewhere';
  crashTimes: number[];
  restarts: number;
  /** Consecutive failures to start (bind the endpoint), for their own backoff. */
  startFailures: number;
  startedAt: string;
  lastError?: string;
  lastErrorAt?: string;
  nextRestartAt?: string;
  timer?: NodeJS.Timeout;
}

export interface SupervisorOptions {
  bus: Bus;
  dirs: Dirs;
  log: Logger;
  mode: AgentStatus['mode'];
  version: string;
  agents: readonly AgentSpec[];
  settings: AgentSettings;
  policy?: Partial<SupervisorPolicy>;
  /** True: an agent whose endpoint another process holds is retried until it can be taken over.
   *  False: that is an error (an agent run alone must not run twice). */
  takeOver?: boolean;
  /** Called when an agent reaches the crash cap. */
  onFailed?(agent: string): void;
}

export class Supervisor {
  private readonly slots = new Map<string, Slot>();
  private readonly policy: SupervisorPolicy;
  private touchTimer?: NodeJS.Timeout;
  private stopping = false;

  constructor(private readonly opts: SupervisorOptions) {
    this.policy = { ...DEFAULT_POLICY, ...opts.policy };
    for (const spec of opts.agents) {
      this.slots.set(spec.name, { spec, state: 'starting', crashTimes: [], restarts: 0, startFailures: 0, startedAt: new Date().toISOString() });
    }
  }

  has(agent: string): boolean {
    return this.slots.has(agent);
  }

  /** Starts every agent; resolves when each is running, held elsewhere, or failed. */
  async start(): Promise<void> {
    fs.mkdirSync(this.opts.dirs.run, { recursive: true });
    await Promise.all([...this.slots.values()].map((s) => this.startSlot(s)));
    this.touchTimer = setInterval(() => this.touchAll(), this.policy.touchIntervalMs);
    const running = [...this.slots.values()].filter((s) => s.state === 'running').map((s) => s.spec.name);
    const elsewhere = [...this.slots.values()].filter((s) => s.state === 'elsewhere').map((s) => s.spec.name);
    this.opts.log.info('all agents ready', { ms: Math.round(performance.now()), running, elsewhere });
  }

  /** A failure attributed to `agent` (uncaught error in its scope, or a throwing handler).
   *  Returns false when it is not the running instance's (a leftover of an earlier run, or a stop). */
  crash(agent: string, instanceId: number | undefined, err: unknown): boolean {
    const slot = this.slots.get(agent);
    if (!slot || this.stopping || slot.state !== 'running' || !slot.instance) return false;
    if (instanceId !== undefined && instanceId !== slot.instance.id) return false;
    const message = err instanceof Error ? err.message : String(err);
    const instance = slot.instance;
    slot.instance = undefined;
    instance.release();
    const now = Date.now();
    slot.crashTimes = slot.crashTimes.filter((t) => now - t < this.policy.crashWindowMs).concat(now);
    slot.lastError = message;
    slot.lastErrorAt = new Date(now).toISOString();
    const crashes = slot.crashTimes.length;
    if (crashes >= this.policy.crashLimit) {
      slot.state = 'failed';
      slot.nextRestartAt = undefined;
      this.opts.log.error('agent crashed too often, not restarting it', { agent, crashes, windowMs: this.policy.crashWindowMs, error: err });
      this.report(slot);
      this.opts.onFailed?.(agent);
      return true;
    }
    const delay = backoffDelay(this.policy.restart, crashes);
    slot.state = 'backoff';
    slot.nextRestartAt = new Date(now + delay).toISOString();
    this.opts.log.error('agent crashed, restarting after backoff', { agent, crashes, delayMs: delay, error: err });
    this.report(slot);
    slot.timer = setTimeout(() => {
      slot.restarts++;
      this.retry(slot);
    }, delay);
    return true;
  }

  /** Starts a slot from a timer. A failure here has no caller to go to: log it and try again later. */
  private retry(slot: Slot): void {
    this.startSlot(slot).catch((err: unknown) => {
      if (this.stopping) return;
      slot.startFailures++;
      const delay = backoffDelay(this.policy.restart, slot.startFailures);
      slot.state = 'backoff';
      slot.lastError = err instanceof Error ? err.message : String(err);
      slot.lastErrorAt = new Date().toISOString();
      slot.nextRestartAt = new Date(Date.now() + delay).toISOString();
      this.opts.log.error('cannot start agent, retrying after backoff', { agent: slot.spec.name, delayMs: delay, error: err });
      this.report(slot);
      slot.timer = setTimeout(() => this.retry(slot), delay);
    });
  }

  /** Stops every agent within the policy's bound; true if all stopped in time. */
  async stop(): Promise<boolean> {
    if (this.stopping) return true;
    this.stopping = true;
    clearInterval(this.touchTimer);
    const started = Date.now();
    const results = await Promise.all(
      [...this.slots.values()].map(async (slot) => {
        clearTimeout(slot.timer);
        if (slot.state === 'running') {
          slot.state = 'stopping';
          this.report(slot);
        }
        const ok = (await slot.instance?.stop(this.policy.stopTimeoutMs)) ?? true;
        if (!ok) this.opts.log.warn('agent did not stop in time', { agent: slot.spec.name, timeoutMs: this.policy.stopTimeoutMs });
        return ok;
      }),
    );
    await this.opts.bus.close();
    this.opts.log.info('all agents stopped', { ms: Date.now() - started });
    return results.every(Boolean);
  }

  private async startSlot(slot: Slot): Promise<void> {
    if (this.stopping) return;
    const name = slot.spec.name;
    if (!slot.endpoint) {
      try {
        slot.endpoint = await this.opts.bus.endpoint(name);
        slot.status = slot.endpoint.publication('AgentStatus');
      } catch (err) {
        if (!(err instanceof EndpointBusyError) || !this.opts.takeOver) throw err;
        if (slot.state !== 'elsewhere') this.opts.log.warn('agent runs in another process; will take over if it stops', { agent: name, holderPid: err.holderPid });
        slot.state = 'elsewhere';
        slot.timer = setTimeout(() => this.retry(slot), this.policy.elsewhereRetryMs);
        return;
      }
    }
    const instance = new AgentInstance(slot.spec, {
      bus: this.opts.bus,
      endpoint: slot.endpoint,
      dirs: this.opts.dirs,
      log: this.opts.log.child(name),
      settings: this.opts.settings,
      fail: (err) => this.crash(name, instance.id, err),
    });
    slot.instance = instance;
    slot.state = 'running';
    slot.startFailures = 0;
    slot.nextRestartAt = undefined;
    slot.startedAt = new Date().toISOString();
    this.touch(slot);
    instance.start().then(
      () => {
        if (!instance.aborted) this.crash(name, instance.id, new Error('run() returned while the agent was meant to be running'));
      },
      (err: unknown) => this.crash(name, instance.id, err),
    );
  }

  private touchAll(): void {
    for (const slot of this.slots.values()) if (slot.state === 'running') this.touch(slot);
  }

  private touch(slot: Slot): void {
    const file = path.join(this.opts.dirs.run, `${slot.spec.name}.touch`);
    try {
      fs.writeFileSync(file, `${process.pid}\n`);
    } catch (err) {
      this.opts.log.warn('cannot touch liveness file', { agent: slot.spec.name, file, error: err });
    }
    this.report(slot);
  }

  private report(slot: Slot): void {
    if (!slot.status || slot.status.isClosed) return;
    const status: AgentStatus = {
      agent: slot.spec.name,
      pid: process.pid,
      mode: this.opts.mode,
      version: this.opts.version,
      state: slot.state === 'elsewhere' ? 'starting' : slot.state,
      startedAt: slot.startedAt,
      aliveAt: new Date().toISOString(),
      crashes: slot.crashTimes.length,
      restarts: slot.restarts,
      ...(slot.lastError !== undefined && { lastError: slot.lastError.slice(0, 2000), lastErrorAt: slot.lastErrorAt }),
      ...(slot.nextRestartAt !== undefined && { nextRestartAt: slot.nextRestartAt }),
    };
    slot.status.publish(slot.spec.name, status);
  }
}
