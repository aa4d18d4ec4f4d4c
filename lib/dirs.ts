// Where zedbox keeps its files. Defaults follow EVE's layout; every one is
// configurable so tests and demos run in temporary folders.
import * as path from 'node:path';

export interface Dirs {
  /** Volatile state for this boot: bus sockets, touch files. EVE: /run. */
  run: string;
  /** State that must survive a reboot: persistent collections. EVE: /persist. */
  persist: string;
  /** Provisioning and local configuration. EVE: /config. */
  config: string;
}

export const DEFAULT_DIRS: Dirs = { run: '/run/zedbox', persist: '/persist', config: '/config' };

/** Resolves directories from flags, then environment, then defaults. */
export function resolveDirs(flags: Partial<Dirs>, env: NodeJS.ProcessEnv = process.env): Dirs {
  const root = env.ZEDBOX_ROOT;
  const base: Dirs = root
    ? { run: path.join(root, 'run'), persist: path.join(root, 'persist'), config: path.join(root, 'config') }
    : DEFAULT_DIRS;
  return {
    run: path.resolve(flags.run ?? env.ZEDBOX_RUN_DIR ?? base.run),
    persist: path.resolve(flags.persist ?? env.ZEDBOX_PERSIST_DIR ?? base.persist),
    config: path.resolve(flags.config ?? env.ZEDBOX_CONFIG_DIR ?? base.config),
  };
}
