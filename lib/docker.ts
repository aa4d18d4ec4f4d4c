// How agents reach the Docker engine, and the labels that mark what a zedbox
// owns there. volumemgr (images) and domainmgr (containers, networks) share them.
import Docker from 'dockerode';
import type { AgentSettings } from './settings';

export const LABEL_OWNED = 'org.zedbox.owned';
/** Which zedbox (AgentSettings.instance) owns the object. */
export const LABEL_INSTANCE = 'org.zedbox.instance';
export const LABEL_APP = 'org.zedbox.app';
export const LABEL_SPEC = 'org.zedbox.spec';

export function dockerClient(settings: Pick<AgentSettings, 'dockerSocket'>): Docker {
  return new Docker({ socketPath: settings.dockerSocket });
}

/** Docker's 404 (no such object) and 304 (already in that state) mean the work is done. */
export function isDockerNoop(err: unknown): boolean {
  const code = (err as { statusCode?: number } | null)?.statusCode;
  return code === 404 || code === 304;
}
