// Runs agents in the test's own process on a real bus, with a "peer" side that
// publishes what the agents' neighbours would publish and waits for what the
// agents publish. Directories are fresh temporary folders.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Static, TSchema } from '@sinclair/typebox';
import type { AgentSpec } from '../../agents/agent';
import type { Dirs } from '../../lib/dirs';
import { Logger, type Level } from '../../lib/log';
import { resolveSettings, type AgentSettings } from '../../lib/settings';
import { Bus } from '../../pubsub/bus';
import type { CollectionSpec } from '../../pubsub/catalog';
import type { Publication } from '../../pubsub/publication';
import type { Subscription } from '../../pubsub/subscription';
import { Supervisor } from '../../zedbox/supervisor';

export interface Harness {
  dirs: Dirs;
  settings: AgentSettings;
  bus: Bus;
  /** A publication of `type` as its owner would make it (the owner must not be one of the agents run here). */
  publisher<S extends TSchema>(type: CollectionSpec<S>): Promise<Publication<S>>;
  /** A subscription kept open until stop(); values are read with .get/.getAll. */
  watch<S extends TSchema>(type: CollectionSpec<S>): Subscription<S>;
  /** Resolves with the first value under `key` for which pred holds (checked on every change). */
  waitFor<S extends TSchema>(type: CollectionSpec<S>, key: string, pred: (v: Readonly<Static<S>> | undefined) => boolean, what: string, timeoutMs?: number): Promise<Readonly<Static<S>> | undefined>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  /** Reuse directories (a restart); default fresh temporary ones. */
  dirs?: Dirs;
  settings?: Partial<AgentSettings>;
  logLevel?: Level;
}

export async function startAgents(agents: AgentSpec[], opts: HarnessOptions = {}): Promise<Harness> {
  const dirs = opts.dirs ?? freshDirs();
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const log = new Logger({ source: 'test', level: opts.logLevel ?? (process.env.TEST_LOG_LEVEL as Level | undefined) ?? 'warn', format: 'text' });
  const settings = { ...resolveSettings(dirs), ...opts.settings };
  const bus = new Bus({ runDir: dirs.run, persistDir: dirs.persist, log });
  const supervisor = new Supervisor({ bus, dirs, log, mode: 'all', version: 'test', agents, settings, policy: { restart: { minMs: 200, maxMs: 1000, jitter: 0 } } });
  await supervisor.start();
  const subs = new Map<string, Subscription>();
  // One endpoint per owner: a second bind of the same owner would be refused.
  const endpoints = new Map<string, ReturnType<Bus['endpoint']>>();
  const watch = <S extends TSchema>(type: CollectionSpec<S>): Subscription<S> => {
    let sub = subs.get(type.type);
    if (!sub) {
      sub = bus.subscribe(type as CollectionSpec, { agent: 'test', owner: type.owner === '*' ? undefined : type.owner });
      subs.set(type.type, sub);
    }
    return sub as unknown as Subscription<S>;
  };
  return {
    dirs,
    settings,
    bus,
    async publisher(type) {
      let ep = endpoints.get(type.owner);
      if (!ep) endpoints.set(type.owner, (ep = bus.endpoint(type.owner)));
      return (await ep).publication(type);
    },
    watch,
    async waitFor(type, key, pred, what, timeoutMs = 60_000) {
      const sub = watch(type);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = sub.get(key);
        if (pred(v)) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${type.type}/${key}: ${JSON.stringify(v)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      for (const s of subs.values()) s.close();
      await supervisor.stop();
      await bus.close();
    },
  };
}

export function freshDirs(): Dirs {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-test-'));
  return { run: path.join(root, 'run'), persist: path.join(root, 'persist'), config: path.join(root, 'config') };
}
