// Resolves each ResolveConfig (a registry tag) once, retrying with backoff until
// it works or the config goes, and publishes ResolveStatus.
import type { AgentContext } from '../agent';
import { backoffDelay, sleep } from '../../lib/backoff';
import { severityFor } from '../../pubsub/collections/common';
import { configItem } from '../../pubsub/collections/config-items';
import type { Datastore } from '../../pubsub/collections/config';
import type { ResolveStatus, ResolveStatusCollection } from '../../pubsub/collections/content';
import type { Publication } from '../../pubsub/publication';
import type { HttpClient } from './http-driver';
import { retryCondition } from './planner';
import { resolveTag } from './resolve-driver';

interface ResolveInput {
  contentTreeId: string;
  generation: number;
  datastoreIds: readonly string[];
  reference: string;
}

interface Task {
  reference: string;
  ctl: AbortController;
  done: Promise<void>;
  /** Set when a datastore changes, so a waiting retry runs at once. */
  poke?: () => void;
}

export class Resolver {
  private readonly tasks = new Map<string, Task>();

  constructor(
    private readonly ctx: AgentContext,
    private readonly pub: Publication<(typeof ResolveStatusCollection)['schema']>,
    private readonly client: HttpClient,
    private readonly datastore: (id: string) => Datastore | undefined,
    private readonly items: () => Readonly<Record<string, string>> | undefined,
  ) {}

  upsert(key: string, config: ResolveInput): void {
    const task = this.tasks.get(key);
    if (task && task.reference === config.reference) return;
    task?.ctl.abort();
    const ctl = new AbortController();
    const next: Task = { reference: config.reference, ctl, done: Promise.resolve() };
    next.done = this.resolveLoop(key, config, next).catch((err) => this.ctx.log.error('resolve loop failed', { key, err: String(err) }));
    this.tasks.set(key, next);
  }

  remove(key: string): void {
    this.tasks.get(key)?.ctl.abort();
    this.tasks.delete(key);
    if (this.pub.get(key)) this.pub.unpublish(key);
  }

  datastoresChanged(): void {
    for (const t of this.tasks.values()) t.poke?.();
  }

  async stop(): Promise<void> {
    for (const t of this.tasks.values()) t.ctl.abort();
    await Promise.allSettled([...this.tasks.values()].map((t) => t.done));
  }

  private async resolveLoop(key: string, config: ResolveInput, task: Task): Promise<void> {
    const signal = AbortSignal.any([task.ctl.signal, this.ctx.signal]);
    const base = { contentTreeId: config.contentTreeId, generation: config.generation, reference: config.reference };
    let failures = 0;
    let firstFailure = 0;
    for (;;) {
      try {
        const datastores = config.datastoreIds.map((id) => this.datastore(id));
        const res = await resolveTag(this.client, config.reference, datastores, config.datastoreIds, signal);
        if (signal.aborted) return;
        this.publish(key, { ...base, digest: res.digest, mediaType: res.mediaType, retryCount: failures });
        this.ctx.log.info('resolved', { reference: config.reference, digest: res.digest });
        return;
      } catch (err) {
        if (signal.aborted) return;
        const now = Date.now();
        if (failures === 0) firstFailure = now;
        failures++;
        const maxMs = configItem(this.items(), 'timer.download.retry') * 1000;
        const delay = backoffDelay({ minMs: 1000, maxMs, jitter: 0 }, failures);
        this.publish(key, {
          ...base, retryCount: failures - 1,
          error: {
            error: (err as Error).message, time: new Date(now).toISOString(), severity: severityFor(failures - 1, now - firstFailure),
            retryCondition: retryCondition(delay, failures - 1), entities: [{ type: 'contentTree', id: config.contentTreeId }], source: 'ResolveStatus',
          },
        });
        const poked = new Promise<void>((resolve) => (task.poke = resolve));
        await Promise.race([sleep(delay, signal), poked]);
        if (signal.aborted) return;
      }
    }
  }

  private publish(key: string, status: ResolveStatus): void {
    this.pub.publish(key, Object.fromEntries(Object.entries(status).filter(([, v]) => v !== undefined)) as ResolveStatus);
  }
}
