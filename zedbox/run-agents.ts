// Runs agents in this process: all of them (`zedbox`, the default on small
// devices) or one (`zedbox <agent>` / a link named after it). Both meet on the
// same bus, so a device can run some agents alone and the rest together.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AgentSpec } from '../agents/agent';
import { writeFileAtomicSync } from '../lib/atomic-file';
import type { Dirs } from '../lib/dirs';
import type { Logger } from '../lib/log';
import { LogRelay, logRelaySocketPath, logRelaySpoolDir } from '../lib/log-relay';
import { resolveSettings, type AgentSettings } from '../lib/settings';
import { Bus } from '../pubsub/bus';
import type { Catalog } from '../pubsub/catalog';
import { EndpointBusyError } from '../pubsub/errors';
import { agentScope } from './agent-instance';
import { DEFAULT_POLICY, Supervisor, type SupervisorPolicy } from './supervisor';
import { VERSION } from '../lib/version';

export interface RunAgentsOptions {
  agents: readonly AgentSpec[];
  mode: 'all' | 'alone';
  dirs: Dirs;
  log: Logger;
  settings?: AgentSettings;
  policy?: Partial<SupervisorPolicy>;
  catalog?: Catalog;
  /** The relay `log` tees to (agentRelay): drained at shutdown, so logmanager gets the last lines. */
  relay?: LogRelay;
}

/** How long a shutdown waits for logmanager to take the last lines; the rest go to the spool at exit. */
const RELAY_DRAIN_MS = 1000;

/** The relay of an agent process: lines to logmanager over <run>/logmanager.sock, and what it did
 *  not take when the process exits to <persist>/logmanager/spool/. */
export function agentRelay(dirs: Dirs): LogRelay {
  const relay = new LogRelay({ socketPath: logRelaySocketPath(dirs.run), spoolDir: logRelaySpoolDir(dirs.persist) });
  relay.spoolOnExit();
  return relay;
}

/** Runs until SIGTERM or SIGINT; resolves with the process exit code. */
export async function runAgents(opts: RunAgentsOptions): Promise<number> {
  const { dirs, log } = opts;
  for (const dir of [dirs.run, dirs.persist]) fs.mkdirSync(dir, { recursive: true });
  const bus = new Bus({ runDir: dirs.run, persistDir: dirs.persist, log, catalog: opts.catalog });
  const policy = opts.policy ?? {};
  const stopTimeoutMs = policy.stopTimeoutMs ?? DEFAULT_POLICY.stopTimeoutMs;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => { finish = resolve; });

  const supervisor = new Supervisor({
    bus, dirs, log, mode: opts.mode, version: VERSION, agents: opts.agents, settings: opts.settings ?? resolveSettings(dirs), policy,
    takeOver: opts.mode === 'all',
    onFailed: opts.mode === 'alone' ? () => void shutdown('the agent failed', 1) : undefined,
  });

  const onFault = (kind: string) => (err: unknown): void => {
    const scope = agentScope.getStore();
    if (scope && supervisor.has(scope.agent)) {
      if (!supervisor.crash(scope.agent, scope.instance, err)) {
        log.warn(`${kind} from a stopped run of the agent, ignored`, { agent: scope.agent, error: err });
      }
      return;
    }
    // Outside any agent: the bus or the supervisor itself is broken; do not limp on.
    log.error(`fatal ${kind} outside any agent`, { error: err });
    process.exit(70);
  };
  process.on('uncaughtException', onFault('exception'));
  process.on('unhandledRejection', onFault('promise rejection'));

  let stopping = false;
  async function shutdown(reason: string, code: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { reason });
    // A stop that hangs must not keep the device from restarting us.
    setTimeout(() => {
      log.error('stop exceeded its bound, exiting', { boundMs: stopTimeoutMs + 2000 });
      process.exit(1);
    }, stopTimeoutMs + 2000).unref();
    const clean = await supervisor.stop();
    fs.rmSync(pidFile, { force: true });
    await opts.relay?.drain(RELAY_DRAIN_MS);
    finish(clean ? code : 1);
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.once('SIGINT', () => void shutdown('SIGINT', 0));

  const pidFile = path.join(dirs.run, `${opts.mode === 'all' ? 'zedbox' : opts.agents[0]?.name}.pid`);
  try {
    await supervisor.start();
  } catch (err) {
    if (err instanceof EndpointBusyError) {
      log.error(err.message, { agent: err.agent, holderPid: err.holderPid });
      await bus.close();
      return 1;
    }
    throw err;
  }
  writeFileAtomicSync(pidFile, `${process.pid}\n`);
  return finished;
}
