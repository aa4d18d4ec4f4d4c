// The agents that can own collections on the bus. The entry point's registry
// and the collection catalogue both use this list, so a typo is a compile error.

export const AGENT_NAMES = [
  'nim',
  'downloader',
  'verifier',
  'volumemgr',
  'zedmanager',
  'domainmgr',
  'zedagent',
  'logmanager',
  'ledmanager',
] as const;

export type AgentName = (typeof AGENT_NAMES)[number];

/** Owner marker for a collection that every agent publishes about itself, keyed by its own name. */
export const EVERY_AGENT = '*';
export type Owner = string;
