// An app's errors gathered from everything that concerns it (its config, its
// volumes, its container, zedmanager itself), and the AppInstanceSummary
// counts. Pure.
import type { ErrorInfo, Severity } from '../../pubsub/collections/common';
import type { AppInstanceStatus, DomainStatus } from '../../pubsub/collections/apps';
import type { VolumeRefStatus } from '../../pubsub/collections/volumes';

const RANK: Record<Severity, number> = { notice: 0, warning: 1, error: 2 };

export interface ErrorSources {
  configErrors: readonly string[];
  volumeRefs: readonly VolumeRefStatus[];
  domain?: DomainStatus;
  /** zedmanager's own findings (e.g. a root volume that is not an image). */
  own: readonly string[];
  /** The errors published last time: an unchanged error keeps its first time. */
  previous: readonly ErrorInfo[];
  now: string;
}

export function gatherErrors(src: ErrorSources): ErrorInfo[] {
  const firstSeen = (error: string, source: string): string =>
    src.previous.find((e) => e.error === error && e.source === source)?.time ?? src.now;
  const out: ErrorInfo[] = [];
  for (const error of src.configErrors) {
    out.push({ error, time: firstSeen(error, 'AppInstanceConfig'), severity: 'error', retryCondition: 'fix the config', source: 'AppInstanceConfig' });
  }
  for (const v of src.volumeRefs) {
    if (!v.error) continue;
    const entities = [...(v.error.entities ?? []), { type: 'volume', id: v.volumeId }];
    out.push({ ...v.error, entities: dedupe(entities), source: 'VolumeRefStatus' });
  }
  if (src.domain?.error) {
    const entities = [...(src.domain.error.entities ?? []), { type: 'app', id: src.domain.appId }];
    out.push({ ...src.domain.error, entities: dedupe(entities), source: 'DomainStatus' });
  }
  for (const error of src.own) {
    out.push({ error, time: firstSeen(error, 'zedmanager'), severity: 'error', source: 'zedmanager' });
  }
  return out;
}

/** The most severe error (the first of equals), as AppInstanceStatus.error. */
export function mostSevere(errors: readonly ErrorInfo[]): ErrorInfo | undefined {
  let worst: ErrorInfo | undefined;
  for (const e of errors) if (!worst || RANK[e.severity] > RANK[worst.severity]) worst = e;
  return worst;
}

function dedupe(entities: { type: string; id: string }[]): { type: string; id: string }[] {
  const seen = new Set<string>();
  return entities.filter((e) => {
    const k = `${e.type}\0${e.id}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export interface Summary { total: number; starting: number; running: number; stopping: number; halted: number; error: number }

/** EVE's AppInstanceSummary: an app in error counts as error only; the others by state. */
export function summarize(statuses: Iterable<Readonly<AppInstanceStatus>>): Summary {
  const s: Summary = { total: 0, starting: 0, running: 0, stopping: 0, halted: 0, error: 0 };
  for (const a of statuses) {
    s.total++;
    if (a.error?.severity === 'error' || a.state === 'BROKEN') s.error++;
    else if (a.state === 'RUNNING') s.running++;
    else if (a.state === 'HALTING') s.stopping++;
    else if (a.state === 'HALTED') s.halted++;
    else s.starting++;
  }
  return s;
}
