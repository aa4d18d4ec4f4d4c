// The supervisor's command-line options (agents run alone or all together).
import { UsageError, dirsFrom, numberOption, parseCli, str, type Values } from '../lib/cli';
import { InvalidSettingError, resolveSettings, type AgentSettings } from '../lib/settings';
import { DEFAULT_POLICY, type SupervisorPolicy } from './supervisor';

const D = DEFAULT_POLICY;

export const SUPERVISOR_HELP = `Supervisor options:
  --restart-min-ms N     first restart delay after a crash (default ${D.restart.minMs}; doubles up to --restart-max-ms)
  --restart-max-ms N     longest restart delay (default ${D.restart.maxMs})
  --crash-limit N        crashes within --crash-window-ms before an agent is left failed (default ${D.crashLimit})
  --crash-window-ms N    (default ${D.crashWindowMs})
  --touch-interval-ms N  liveness touch period (default ${D.touchIntervalMs})
  --stop-timeout-ms N    bound on a clean stop after SIGTERM (default ${D.stopTimeoutMs})
  --takeover-retry-ms N  zedbox all: how often to retry an agent another process runs (default ${D.elsewhereRetryMs})

Device options:
  --config FILE          the local device config (default <config dir>/device-config.json, env ZEDBOX_CONFIG_FILE)
  --docker-socket PATH   the Docker engine's socket (default /var/run/docker.sock, or DOCKER_HOST=unix://PATH)`;

const SUPERVISOR_OPTIONS = {
  'restart-min-ms': { type: 'string' },
  'restart-max-ms': { type: 'string' },
  'crash-limit': { type: 'string' },
  'crash-window-ms': { type: 'string' },
  'touch-interval-ms': { type: 'string' },
  'stop-timeout-ms': { type: 'string' },
  'takeover-retry-ms': { type: 'string' },
  config: { type: 'string' },
  'docker-socket': { type: 'string' },
  only: { type: 'string' },
  except: { type: 'string' },
} as const;

export function parseAgentArgs(args: readonly string[]) {
  return parseCli(args, SUPERVISOR_OPTIONS);
}

export function policyFrom(v: Values): Partial<SupervisorPolicy> {
  const policy: Partial<SupervisorPolicy> = {};
  const min = numberOption(v, 'restart-min-ms');
  const max = numberOption(v, 'restart-max-ms');
  if (min !== undefined || max !== undefined) {
    policy.restart = { ...D.restart, minMs: min ?? D.restart.minMs, maxMs: max ?? Math.max(D.restart.maxMs, min ?? 0) };
  }
  const pairs: Array<[keyof SupervisorPolicy, string]> = [
    ['crashLimit', 'crash-limit'],
    ['crashWindowMs', 'crash-window-ms'],
    ['touchIntervalMs', 'touch-interval-ms'],
    ['stopTimeoutMs', 'stop-timeout-ms'],
    ['elsewhereRetryMs', 'takeover-retry-ms'],
  ];
  for (const [key, flag] of pairs) {
    const val = numberOption(v, flag);
    if (val !== undefined) (policy as Record<string, unknown>)[key] = val;
  }
  return policy;
}

export function settingsFrom(v: Values): AgentSettings {
  try {
    return resolveSettings(dirsFrom(v), { config: str(v.config), dockerSocket: str(v['docker-socket']) });
  } catch (err) {
    throw err instanceof InvalidSettingError ? new UsageError(err.message) : err;
  }
}
