// The ordered list of port configurations nim chooses from (EVE's
// DevicePortConfigList): merging what the sources give into it, ordering,
// retention and identities. Pure: no I/O, the time comes in as an argument.
import { jsonEqual } from '../../pubsub/equal';
import type { DevicePortConfigList, DpcEntry, DpcSource, NetworkPortConfig } from '../../pubsub/collections/network';

/** EVE caps the list by the bus's value size; the schema caps it at 16. */
export const MAX_ENTRIES = 16;
/** The last resort ranks below everything and keeps one identity whatever its ports (EVE gives it the epoch). */
export const LAST_RESORT_TIME = new Date(0).toISOString();

const RANK: Readonly<Record<DpcSource, number>> = { zedagent: 0, local: 1, lastresort: 2 };

/**
 * What each source offers now. `undefined`: not known yet (the source has not spoken since
 * nim started), so the list keeps what it held for it; `null` (or no files): the source offers nothing.
 */
export interface Sources {
  zedagent?: NetworkPortConfig[] | null;
  /** One port set per local file that parsed, in file-name order. */
  local?: NetworkPortConfig[][];
  /** DHCP on every ethernet port when network.fallback.any.eth is on; null when it is off. */
  lastresort?: NetworkPortConfig[] | null;
}

/** EVE's PubKey: source and time priority name one entry for its whole life. */
export function entryId(e: Pick<DpcEntry, 'key' | 'timePriority'>): string {
  return `${e.key}@${e.timePriority}`;
}

export function emptyList(): DevicePortConfigList {
  return { currentIndex: -1, list: [] };
}

/** Milliseconds of an RFC 3339 time, or 0 when absent. */
export function ms(time: string | undefined): number {
  return time === undefined ? 0 : Date.parse(time) || 0;
}

/** The entry that worked most recently (EVE's "last working"), if any ever did. */
export function lastWorkingIndex(list: readonly DpcEntry[]): number {
  let best = -1;
  list.forEach((e, i) => {
    if (!e.lastSucceeded) return;
    if (best < 0 || ms(e.lastSucceeded) > ms(list[best]!.lastSucceeded)) best = i;
  });
  return best;
}

/** Controller above local files above the last resort; newer above older within a source. */
export function compareEntries(a: DpcEntry, b: DpcEntry): number {
  return RANK[a.key] - RANK[b.key] || ms(b.timePriority) - ms(a.timePriority);
}

/**
 * The list after the sources changed. A port set nim already holds for that source keeps its
 * entry (time priority and test results); a new one gets `nowMs` as its time priority, or 1 ms
 * past the newest of its source when that is later (a clock behind). An older
 * entry of a source that still offers something is kept only while it is the current or the last
 * working one (EVE's retention); a source that offers nothing loses all its entries.
 */
export function mergeSources(prev: DevicePortConfigList, src: Sources, nowMs: number): DevicePortConfigList {
  const current = prev.list[prev.currentIndex];
  const working = prev.list[lastWorkingIndex(prev.list)];
  const taken = new Set(prev.list.map(entryId));
  const next: DpcEntry[] = [];
  const offer = (key: DpcSource, ports: NetworkPortConfig[]): void => {
    const have = prev.list.find((e) => e.key === key && jsonEqual(e.ports, ports) && !next.includes(e));
    if (have) return void next.push(have);
    // Newer than any entry of the source even when the clock is behind them (set back, or not yet
    // synchronised): a new configuration must rank first within its source whatever the clock says.
    let t = Math.max(nowMs, ...prev.list.filter((e) => e.key === key).map((e) => ms(e.timePriority) + 1));
    let timePriority = key === 'lastresort' ? LAST_RESORT_TIME : new Date(t).toISOString();
    while (key !== 'lastresort' && taken.has(`${key}@${timePriority}`)) timePriority = new Date(++t).toISOString();
    taken.add(`${key}@${timePriority}`);
    next.push({ key, ports: structuredClone(ports), timePriority, state: 'none' });
  };
  const keepAll = (key: DpcSource): void => {
    for (const e of prev.list) if (e.key === key) next.push(e);
  };

  if (src.zedagent === undefined) keepAll('zedagent');
  else if (src.zedagent) offer('zedagent', src.zedagent);
  if (src.local === undefined) keepAll('local');
  // Files first seen together: the first by name gets the highest time priority.
  else [...src.local].reverse().forEach((ports) => offer('local', ports));
  if (src.lastresort === undefined) keepAll('lastresort');
  else if (src.lastresort) {
    // One identity whatever its ports: new interfaces change it in place (its results start over).
    const old = prev.list.find((e) => e.key === 'lastresort');
    if (old && !jsonEqual(old.ports, src.lastresort)) next.push({ key: 'lastresort', ports: structuredClone(src.lastresort), timePriority: LAST_RESORT_TIME, state: 'none' });
    else offer('lastresort', src.lastresort);
  }

  // Older versions of a source that still speaks: kept while current or last working.
  const stillOffered = (key: DpcSource): boolean => (key === 'zedagent' ? src.zedagent !== null : key === 'local' ? src.local === undefined || src.local.length > 0 : src.lastresort !== null);
  for (const keep of [current, working]) {
    if (keep && keep.key !== 'lastresort' && stillOffered(keep.key) && !next.some((e) => entryId(e) === entryId(keep))) next.push(keep);
  }
  return withCurrent(next, current);
}

/** Sorted, capped (never dropping the current or last working entry), and the current entry found again. */
function withCurrent(entries: DpcEntry[], current: DpcEntry | undefined): DevicePortConfigList {
  const sorted = [...entries].sort(compareEntries);
  while (sorted.length > MAX_ENTRIES) {
    const lw = sorted[lastWorkingIndex(sorted)];
    // Drop the lowest-ranked entry that is neither current nor last working.
    for (let i = sorted.length - 1; i >= 0; i--) {
      const e = sorted[i]!;
      if ((current && entryId(e) === entryId(current)) || e === lw) continue;
      sorted.splice(i, 1);
      break;
    }
  }
  const currentIndex = current ? sorted.findIndex((e) => entryId(e) === entryId(current)) : -1;
  return { currentIndex, list: sorted };
}

/** A restored list made safe to use: sorted and capped, its current index in range. */
export function restoreList(saved: DevicePortConfigList | undefined): DevicePortConfigList {
  if (!saved) return emptyList();
  return withCurrent([...saved.list], saved.list[saved.currentIndex]);
}

/** A copy of the list with one entry changed (found by identity); a field patched to undefined is removed. */
export function updateEntry(list: DevicePortConfigList, id: string, patch: Partial<DpcEntry>): DevicePortConfigList {
  const change = (e: DpcEntry): DpcEntry => {
    const next: Record<string, unknown> = { ...e, ...patch };
    for (const k of Object.keys(next)) if (next[k] === undefined) delete next[k];
    return next as DpcEntry;
  };
  return { ...list, list: list.list.map((e) => (entryId(e) === id ? change(e) : e)) };
}
