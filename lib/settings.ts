// Settings agents share that are not directories: where the device config comes
// from, how to reach the Docker engine, and the name this zedbox gives its
// objects in places other programs share (Docker's containers, images, networks).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Dirs } from './dirs';

/** It names Docker objects (image repositories are lowercase), so keep to what every name allows. */
const INSTANCE = /^[a-z0-9][a-z0-9-]{0,31}$/;

export interface AgentSettings {
  /** The local device config (--config FILE); default <config dir>/device-config.json. */
  readonly configFile: string;
  /** Docker engine socket (--docker-socket, env DOCKER_HOST=unix://...); default /var/run/docker.sock. */
  readonly dockerSocket: string;
  /**
   * Marks what this zedbox owns on a shared engine (label org.zedbox.instance), so two
   * zedboxes (or two test runs) on one engine never adopt or remove each other's containers.
   * env ZEDBOX_INSTANCE, else derived from the persist directory.
   */
  readonly instance: string;
}

export interface SettingsFlags {
  config?: string;
  dockerSocket?: string;
}

export function resolveSettings(dirs: Dirs, flags: SettingsFlags = {}, env: NodeJS.ProcessEnv = process.env): AgentSettings {
  const dockerHost = env.DOCKER_HOST?.startsWith('unix://') ? env.DOCKER_HOST.slice('unix://'.length) : undefined;
  return {
    configFile: path.resolve(flags.config ?? env.ZEDBOX_CONFIG_FILE ?? path.join(dirs.config, 'device-config.json')),
    dockerSocket: flags.dockerSocket ?? dockerHost ?? '/var/run/docker.sock',
    instance: instanceFrom(env.ZEDBOX_INSTANCE, dirs.persist),
  };
}

function instanceFrom(given: string | undefined, persistDir: string): string {
  if (!given) return instanceOf(persistDir);
  if (!INSTANCE.test(given)) {
    throw new InvalidSettingError(`ZEDBOX_INSTANCE "${given}" must be 1 to 32 lowercase letters, digits or dashes, starting with a letter or digit`);
  }
  return given;
}

/** A setting that cannot work; the entry reports it as a usage error. */
export class InvalidSettingError extends Error {
  override name = 'InvalidSettingError';
}

/** A short stable name for the persist directory: the device's identity on a shared engine. */
export function instanceOf(persistDir: string): string {
  let real = persistDir;
  try { real = fs.realpathSync(persistDir); } catch { /* not made yet: the resolved path is stable enough */ }
  return createHash('sha256').update(real).digest('hex').slice(0, 12);
}
