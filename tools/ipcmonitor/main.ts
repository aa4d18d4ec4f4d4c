// ipcmonitor: the first tool to reach for on a device. Lists every publication
// on the running bus, or watches one: its initial state, then each change.
import { Type } from '@sinclair/typebox';
import type { ToolSpec } from '../tool';
import { UsageError, dirsFrom, loggerFrom, numberOption, parseCli, str } from '../../lib/cli';
import { Bus } from '../../pubsub/bus';
import { defineCollection, type CollectionSpec } from '../../pubsub/catalog';
import { CATALOG } from '../../pubsub/collections';
import { discover } from '../../pubsub/discovery';
import { EVERY_AGENT } from '../../pubsub/owners';
import type { Subscription } from '../../pubsub/subscription';
import { eventLine, listJson, listTable, type WatchEvent } from './format';

const HELP = `Usage:
  ipcmonitor [list] [--json]          every publication: owner, pid, type, key count, restarted counter, sequence
  ipcmonitor watch TARGET [options]   the initial state of a collection, then every change as it happens

TARGET is a collection type (AgentStatus) or owner/Type (nim/AgentStatus). A type that every agent
publishes (AgentStatus) is watched on every live owner. A type this build does not know can be watched
as owner/Type; its values are shown without validation.

Watch options:
  --key K             only this key
  --json              JSON lines instead of the table
  --once              print the initial state and exit (exit 1 if an owner does not answer in time)
  --timeout-ms N      how long --once waits for the initial state (default 5000)
  --duration-ms N     stop watching after N ms (default: until interrupted)`;

const OPTIONS = {
  json: { type: 'boolean' },
  key: { type: 'string' },
  once: { type: 'boolean' },
  'timeout-ms': { type: 'string' },
  'duration-ms': { type: 'string' },
} as const;

export const ipcmonitor: ToolSpec = {
  name: 'ipcmonitor',
  summary: 'list the publications on the bus, or watch one',
  help: HELP,
  async main(args, env) {
    const { values, positionals } = parseCli(args, OPTIONS, true);
    const dirs = dirsFrom(values);
    const [command = 'list', target, ...extra] = positionals;
    if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
    if (command === 'list') {
      const reports = await discover(dirs.run);
      if (reports.length === 0) {
        process.stderr.write(`ipcmonitor: no bus endpoints under ${dirs.run}/bus: is zedbox running with this --run-dir?\n`);
        return 1;
      }
      env.out(values.json ? listJson(reports) : listTable(reports));
      return 0;
    }
    if (command !== 'watch') throw new UsageError(`unknown command "${command}" (list or watch)`);
    if (!target) throw new UsageError('watch needs a collection type or owner/Type');
    const { spec, owners } = await resolveTarget(target, dirs.run);
    const bus = new Bus({ runDir: dirs.run, persistDir: dirs.persist, log: loggerFrom(values, 'ipcmonitor') });
    const json = values.json === true;
    const onlyKey = str(values.key);
    const emit = (e: Omit<WatchEvent, 'time' | 'type'>): void => {
      if (onlyKey !== undefined && e.key !== undefined && e.key !== onlyKey) return;
      env.out(eventLine({ time: new Date().toISOString(), type: spec.type, ...e }, json));
    };
    const subs: Subscription[] = owners.map((owner) =>
      bus.subscribe(spec, {
        agent: 'ipcmonitor',
        owner,
        create: (key, value) => emit({ event: 'create', owner, key, value }),
        modify: (key, value) => emit({ event: 'modify', owner, key, value }),
        delete: (key, old) => emit({ event: 'delete', owner, key, old }),
        synchronized: () => emit({ event: 'synchronized', owner }),
        restarted: (counter) => emit({ event: 'restarted', owner, counter }),
      }),
    );
    try {
      if (values.once) return await waitInitial(subs, numberOption(values, 'timeout-ms') ?? 5000);
      await untilStopped(numberOption(values, 'duration-ms'));
      return 0;
    } finally {
      await bus.close();
    }
  },
};

async function resolveTarget(target: string, runDir: string): Promise<{ spec: CollectionSpec; owners: string[] }> {
  const slash = target.indexOf('/');
  const owner = slash >= 0 ? target.slice(0, slash) : undefined;
  const type = slash >= 0 ? target.slice(slash + 1) : target;
  const known = CATALOG.get(type);
  if (!known && !owner) throw new UsageError(`unknown collection type ${type}; name its owner as owner/${type} to watch it anyway`);
  const spec = known ?? defineCollection({ type, owner: owner as string, schema: Type.Unknown(), description: 'not in this build' });
  if (owner) {
    if (known && known.owner !== EVERY_AGENT && known.owner !== owner) throw new UsageError(`${type} is owned by ${known.owner}, not ${owner}`);
    return { spec, owners: [owner] };
  }
  if (spec.owner !== EVERY_AGENT) return { spec, owners: [spec.owner] };
  const owners = (await discover(runDir)).filter((r) => r.info?.pubs.some((p) => p.type === type)).map((r) => r.owner);
  if (owners.length === 0) throw new UsageError(`no live agent publishes ${type} under ${runDir}`);
  return { spec, owners };
}

async function waitInitial(subs: Subscription[], timeoutMs: number): Promise<number> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const results = await Promise.allSettled(subs.map((s) => s.whenSynchronized(abort.signal)));
  clearTimeout(timer);
  const silent = subs.filter((_, i) => results[i]?.status === 'rejected').map((s) => s.owner);
  if (silent.length) {
    process.stderr.write(`ipcmonitor: no complete state from ${silent.join(', ')} within ${timeoutMs} ms\n`);
    return 1;
  }
  return 0;
}

function untilStopped(durationMs: number | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (durationMs !== undefined) setTimeout(done, durationMs);
  });
}
