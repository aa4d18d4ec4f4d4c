// Every name zedbox answers to: agents (long-running, supervised) and tools
// (run to completion). Modules load lazily so a small tool starts fast.
import type { AgentSpec } from '../agents/agent';
import type { ToolSpec } from '../tools/tool';
import type { AgentName } from '../pubsub/owners';

interface AgentEntry {
  kind: 'agent';
  name: AgentName;
  load(): Promise<AgentSpec>;
}
interface ToolEntry {
  kind: 'tool';
  name: string;
  summary: string;
  load(): Promise<ToolSpec>;
}
export type Entry = AgentEntry | ToolEntry;

// In start-up order: the network first, the controller link last (as EVE's device-steps does).
export const AGENTS: readonly AgentEntry[] = [
  { kind: 'agent', name: 'nim', load: async () => (await import('../agents/nim/main')).nim },
  { kind: 'agent', name: 'ledmanager', load: async () => (await import('../agents/ledmanager/main')).ledmanager },
  { kind: 'agent', name: 'logmanager', load: async () => (await import('../agents/logmanager/main')).logmanager },
  { kind: 'agent', name: 'downloader', load: async () => (await import('../agents/downloader/main')).downloader },
  { kind: 'agent', name: 'verifier', load: async () => (await import('../agents/verifier/main')).verifier },
  { kind: 'agent', name: 'volumemgr', load: async () => (await import('../agents/volumemgr/main')).volumemgr },
  { kind: 'agent', name: 'domainmgr', load: async () => (await import('../agents/domainmgr/main')).domainmgr },
  { kind: 'agent', name: 'zedmanager', load: async () => (await import('../agents/zedmanager/main')).zedmanager },
  { kind: 'agent', name: 'zedagent', load: async () => (await import('../agents/zedagent/main')).zedagent },
];

export const TOOLS: readonly ToolEntry[] = [
  { kind: 'tool', name: 'ipcmonitor', summary: 'list the publications on the bus, or watch one', load: async () => (await import('../tools/ipcmonitor/main')).ipcmonitor },
  { kind: 'tool', name: 'diag', summary: 'console status of the device', load: async () => (await import('../tools/diag/main')).diag },
  { kind: 'tool', name: 'onboard', summary: 'make the device keys and onboard with the controller', load: async () => (await import('../tools/onboard/main')).onboardTool },
  { kind: 'tool', name: 'zedctl', summary: 'the reference controller: serve, onboard devices, set config, watch state', load: async () => (await import('../controller/main')).zedctl },
];

/** Names the build links in dist/bin/. */
export const LINK_NAMES: readonly string[] = [...AGENTS.map((a) => a.name), ...TOOLS.map((t) => t.name)];

export function findEntry(name: string): Entry | undefined {
  return AGENTS.find((a) => a.name === name) ?? TOOLS.find((t) => t.name === name);
}

export async function listing(): Promise<string> {
  const agents = await Promise.all(AGENTS.map(async (a) => `  ${a.name.padEnd(12)} ${(await a.load()).summary}`));
  const tools = TOOLS.map((t) => `  ${t.name.padEnd(12)} ${t.summary}`);
  return [
    'Run as zedbox <name> [options], or through a link named after it (dist/bin/<name>).',
    '',
    '  all          every agent below in one process (the default)',
    '',
    'Agents:',
    ...agents,
    '',
    'Tools:',
    ...tools,
    '',
    '  version      print the version',
    '  help         this list',
  ].join('\n');
}
