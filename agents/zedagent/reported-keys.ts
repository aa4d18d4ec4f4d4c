// Which objects the controller has been told about, kept across restarts, so an
// object that went away while no zedagent was there to say so (a tombstone lost
// to a crash before the broker had it) is still reported deleted. Written only
// when the set changes (objects come and go far less often than they change).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../lib/atomic-file';
import type { Volume } from '../../pubsub/collections/config';

export class ReportedKeys {
  /** Keys an earlier run reported; settled (and dropped) once a config is in force. */
  prior: Set<string> | undefined;
  private lastWritten = '';

  constructor(private readonly file: string) {
    try {
      const keys = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      if (Array.isArray(keys)) this.prior = new Set(keys.filter((k): k is string => typeof k === 'string'));
      this.lastWritten = JSON.stringify([...(this.prior ?? [])].sort());
    } catch { /* first start, or unreadable: nothing to settle */ }
  }

  static at(persistDir: string): ReportedKeys {
    return new ReportedKeys(path.join(persistDir, 'status', 'zedagent', 'reported-keys.json'));
  }

  /** Saves the keys now reported (plus prior ones not settled yet) if they differ from what is on disk. */
  save(current: Iterable<string>): void {
    const text = JSON.stringify([...new Set([...current, ...(this.prior ?? [])])].sort());
    if (text === this.lastWritten) return;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, text + '\n');
    this.lastWritten = text;
  }
}

/** The objects a config names (their info keys): those may just not have a status yet, so are never stale. */
export function expectedKeys(config: {
  apps: Iterable<string>; volumes: Iterable<Readonly<Volume>>; contentTrees: Iterable<string>; networkInstances: Iterable<string>;
}): Set<string> {
  const out = new Set(['device/global', 'config/global']);
  for (const id of config.apps) out.add(`app/${id}`);
  for (const v of config.volumes) out.add(`volume/${v.id}`);
  for (const id of config.contentTrees) out.add(`contentTree/${id}`);
  for (const id of config.networkInstances) out.add(`networkInstance/${id}`);
  return out;
}

/** Keys an earlier run reported that nothing now reports and the config no longer names. */
export function staleKeys(prior: Iterable<string>, reported: (key: string) => boolean, expected: Set<string>): string[] {
  return [...prior].filter((k) => !reported(k) && !expected.has(k));
}
