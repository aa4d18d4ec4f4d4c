#!/usr/bin/env node
// zedbox's single entry. Like busybox and EVE's zedbox, the name it was invoked
// by chooses what runs: a link named after an agent or tool runs it; as
// `zedbox` the first argument does; with no argument every agent runs.
import * as path from 'node:path';
import type { AgentSpec } from '../agents/agent';
import { AGENTS, findEntry, listing } from './registry';

/** For the build, which links dist/bin/<name> for each. */
export { LINK_NAMES } from './registry';
import { COMMON_HELP, UsageError, dirsFrom, loggerFrom } from '../lib/cli';
import { SUPERVISOR_HELP, parseAgentArgs, policyFrom, settingsFrom } from './options';
import { agentRelay, runAgents } from './run-agents';
import { exitQuietlyOnClosedStdout, exitWhenFlushed } from './exit';
import { VERSION } from '../lib/version';

/** Basenames that mean "zedbox itself" rather than one of its agents. */
function isSelf(base: string): boolean {
  return base === 'zedbox' || base.startsWith('zedbox.') || base === 'main.ts' || base === 'main.js';
}

export async function main(argv: readonly string[]): Promise<number> {
  const invokedAs = path.basename(argv[1] ?? 'zedbox');
  let name: string;
  let rest: string[];
  if (isSelf(invokedAs)) {
    const first = argv[2];
    if (first === undefined || (first.startsWith('-') && !['-h', '--help', '--version'].includes(first))) {
      name = 'all';
      rest = argv.slice(2);
    } else {
      name = first === '-h' || first === '--help' ? 'help' : first === '--version' ? 'version' : first;
      rest = argv.slice(3);
    }
  } else {
    name = invokedAs;
    rest = argv.slice(2);
  }

  try {
    return await dispatch(name, rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\nTry '${name} --help'.\n`);
      return 2;
    }
    throw err;
  }
}

async function dispatch(name: string, rest: string[]): Promise<number> {
  if (name === 'help') {
    process.stdout.write(`zedbox ${VERSION}: the edge-node agent\n\n${await listing()}\n`);
    return 0;
  }
  if (name === 'version') {
    process.stdout.write(`zedbox ${VERSION}\n`);
    return 0;
  }
  if (name === 'all') return runAll(rest);
  const entry = findEntry(name);
  if (!entry) {
    process.stderr.write(`zedbox: unknown agent or tool "${name}"\n\n${await listing()}\n`);
    return 1;
  }
  if (entry.kind === 'tool') {
    const tool = await entry.load();
    if (rest.includes('-h') || rest.includes('--help')) {
      process.stdout.write(`${tool.name}: ${tool.summary}\n\n${tool.help}\n${tool.commonOptions === false ? '' : `\n${COMMON_HELP}\n`}`);
      return 0;
    }
    return tool.main(rest, { out: (s) => process.stdout.write(s) });
  }
  const agent = await entry.load();
  const { values } = parseAgentArgs(rest);
  if (values.only !== undefined || values.except !== undefined) throw new UsageError('--only and --except apply to zedbox all');
  if (values.help) {
    process.stdout.write(`${agent.name}: ${agent.summary}\n\n${agent.help}\n\nUsage: ${agent.name} [options]\n\n${COMMON_HELP}\n\n${SUPERVISOR_HELP}\n`);
    return 0;
  }
  const dirs = dirsFrom(values);
  const relay = agentRelay(dirs);
  return runAgents({ agents: [agent], mode: 'alone', dirs, log: loggerFrom(values, agent.name, relay), relay, policy: policyFrom(values), settings: settingsFrom(values) });
}

async function runAll(rest: string[]): Promise<number> {
  const { values } = parseAgentArgs(rest);
  if (values.help) {
    process.stdout.write(`zedbox all: every agent in one process, each restarted on its own if it crashes\n\nUsage: zedbox [all] [--only a,b] [--except a,b] [options]\n\n${COMMON_HELP}\n\n${SUPERVISOR_HELP}\n\n${await listing()}\n`);
    return 0;
  }
  const pick = (v: unknown): string[] | undefined => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const only = pick(values.only);
  const except = pick(values.except) ?? [];
  for (const n of [...(only ?? []), ...except]) {
    if (!AGENTS.some((a) => a.name === n)) throw new UsageError(`no agent named "${n}"`);
  }
  const chosen = AGENTS.filter((a) => (only ? only.includes(a.name) : true) && !except.includes(a.name));
  const agents: AgentSpec[] = await Promise.all(chosen.map((a) => a.load()));
  const dirs = dirsFrom(values);
  const relay = agentRelay(dirs);
  return runAgents({ agents, mode: 'all', dirs, log: loggerFrom(values, 'zedbox', relay), relay, policy: policyFrom(values), settings: settingsFrom(values) });
}

if (require.main === module) {
  exitQuietlyOnClosedStdout();
  main(process.argv).then(
    (code) => exitWhenFlushed(code),
    (err: unknown) => {
      process.stderr.write(`zedbox: ${err instanceof Error ? err.stack : String(err)}\n`);
      exitWhenFlushed(70);
    },
  );
}
