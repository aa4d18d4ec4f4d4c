// Command-line options every agent and tool shares.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolveDirs, type Dirs } from './dirs';
import { Logger, type Level, type RemoteLogSink } from './log';

export const COMMON_HELP = `Common options:
  --run-dir DIR        volatile state: bus sockets, touch files (default /run/zedbox, env ZEDBOX_RUN_DIR)
  --persist-dir DIR    state kept across reboots (default /persist, env ZEDBOX_PERSIST_DIR)
  --config-dir DIR     provisioning and local config (default /config, env ZEDBOX_CONFIG_DIR)
                       (ZEDBOX_ROOT=DIR puts all three under DIR)
  -d, --debug          debug logging
  --log-format F       json (default) or text
  -h, --help           this help`;

export const COMMON_OPTIONS = {
  'run-dir': { type: 'string' },
  'persist-dir': { type: 'string' },
  'config-dir': { type: 'string' },
  debug: { type: 'boolean', short: 'd' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** A mistake in how the command was called: printed with a hint, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCli<E extends Options>(args: readonly string[], extra: E, positionals = false) {
  try {
    return parseArgs({ args: [...args], options: { ...COMMON_OPTIONS, ...extra }, strict: true, allowPositionals: positionals });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export function dirsFrom(v: Values): Dirs {
  return resolveDirs({ run: str(v['run-dir']), persist: str(v['persist-dir']), config: str(v['config-dir']) });
}

/** The process's root logger; agents pass logmanager's relay as `remote` (tools do not relay). */
export function loggerFrom(v: Values, source: string, remote?: RemoteLogSink): Logger {
  const format = str(v['log-format']) ?? 'json';
  if (format !== 'json' && format !== 'text') throw new UsageError(`--log-format must be json or text, not ${format}`);
  const level: Level = v.debug ? 'debug' : 'info';
  return new Logger({ source, level, format, remote });
}

export function numberOption(v: Values, name: string): number | undefined {
  const raw = str(v[name]);
  if (raw === undefined) return undefined;
  const num = Number(raw);
  if (!Number.isFinite(num) || num < 0) throw new UsageError(`--${name} must be a non-negative number, not ${raw}`);
  return num;
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
