// diag: what a person at the device's console needs to see. Today that is the
// agents: which run, where, how recently they proved liveness, and what broke.
// The network, controller and app sections arrive with the agents that own them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ToolSpec } from '../tool';
import { dirsFrom, loggerFrom, numberOption, parseCli } from '../../lib/cli';
import { writeFileAtomicSync } from '../../lib/atomic-file';
import { Bus } from '../../pubsub/bus';
import type { AgentStatus } from '../../pubsub/collections';
import { discover } from '../../pubsub/discovery';
import { AGENT_NAMES } from '../../pubsub/owners';
import type { Subscription } from '../../pubsub/subscription';
import { table } from '../ipcmonitor/format';

const HELP = `Usage: diag [--once] [--interval-ms N]

Prints each agent's state as its AgentStatus on the bus reports it, the age of its liveness file
(<run>/<agent>.touch), and what is wrong in plain words. Without --once it redraws every
--interval-ms (default 2000), showing agents as they start and stop, and keeps <run>/diag.txt up to date.`;

const OPTIONS = { once: { type: 'boolean' }, 'interval-ms': { type: 'string' } } as const;

/** A touch file older than this means the agent (or the whole process) is stuck or gone. */
const STALE_TOUCH_MS = 60_000;

export const diag: ToolSpec = {
  name: 'diag',
  summary: 'console status of the device',
  help: HELP,
  async main(args, env) {
    const { values } = parseCli(args, OPTIONS);
    const dirs = dirsFrom(values);
    const bus = new Bus({ runDir: dirs.run, persistDir: dirs.persist, log: loggerFrom(values, 'diag') });
    // Every agent, running or not: one that starts later appears as soon as it publishes.
    const subs = new Map<string, Subscription>();
    for (const name of AGENT_NAMES) subs.set(name, bus.subscribe('AgentStatus', { agent: 'diag', owner: name }));
    // Wait for the state of those running now, and only them.
    const live = new Set((await discover(dirs.run, 500)).filter((r) => r.info).map((r) => r.owner));
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 3000);
    await Promise.allSettled([...subs].filter(([name]) => live.has(name)).map(([, s]) => s.whenSynchronized(abort.signal)));
    clearTimeout(timer);
    const draw = (): void => {
      const text = render(dirs.run, subs);
      writeFileAtomicSync(path.join(dirs.run, 'diag.txt'), text);
      env.out(values.once ? text : `\x1b[2J\x1b[H${text}`);
    };
    try {
      draw();
      if (values.once) return 0;
      const every = numberOption(values, 'interval-ms') ?? 2000;
      await new Promise<void>((resolve) => {
        // Each tick, not only on change: the liveness ages move even when nothing is published.
        const tick = setInterval(draw, every);
        const stop = (): void => { clearInterval(tick); resolve(); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    } finally {
      await bus.close();
    }
  },
};

function render(runDir: string, subs: Map<string, Subscription>): string {
  const now = Date.now();
  const rows = [['AGENT', 'STATE', 'MODE', 'PID', 'ALIVE', 'RESTARTS', 'LAST ERROR']];
  const problems: string[] = [];
  for (const name of AGENT_NAMES) {
    const status = subs.get(name)?.get(name) as AgentStatus | undefined;
    const touchAge = ageOf(path.join(runDir, `${name}.touch`), now);
    const alive = touchAge === undefined ? 'never' : `${Math.round(touchAge / 1000)}s ago`;
    if (!status) {
      rows.push([name, 'not running', '-', '-', alive, '-', '']);
      problems.push(`${name} is not on the bus: start zedbox (or ${name} alone) with --run-dir ${runDir}`);
      continue;
    }
    rows.push([name, status.state, status.mode, String(status.pid), alive, String(status.restarts), status.lastError ?? '']);
    if (status.state === 'failed') problems.push(`${name} crashed ${status.crashes} times and was stopped: ${status.lastError ?? 'no error recorded'}`);
    else if (status.state === 'backoff') problems.push(`${name} crashed and restarts at ${status.nextRestartAt}: ${status.lastError ?? ''}`);
    else if (touchAge !== undefined && touchAge > STALE_TOUCH_MS) problems.push(`${name} has not proved liveness for ${Math.round(touchAge / 1000)} s: its process may be stuck`);
  }
  const summary = problems.length ? ['What is wrong:', ...problems.map((p) => `  - ${p}`)].join('\n') : 'All agents are running.';
  return `zedbox diag  ${new Date(now).toISOString()}  run dir ${runDir}\n\n${table(rows)}\n${summary}\n`;
}

function ageOf(file: string, now: number): number | undefined {
  try {
    return now - fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}
