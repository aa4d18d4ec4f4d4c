// Reboot and shutdown counters (EVE's DeviceOpsCmd): act once each time a
// counter changes; the first value ever seen is only the baseline. Pure.
export type DeviceOp = 'reboot' | 'shutdown';

/** The counters last processed, persisted so a change acts once across restarts. */
export interface OpsRecord {
  reboot?: number;
  shutdown?: number;
}

export interface OpsDecision {
  record: OpsRecord;
  /** At most one: a shutdown makes a reboot pointless. */
  act?: DeviceOp;
  changed: boolean;
}

export function decideOps(prev: OpsRecord, wanted: { reboot?: { counter: number }; shutdown?: { counter: number } }): OpsDecision {
  const record: OpsRecord = { ...prev };
  const acts: DeviceOp[] = [];
  for (const op of ['shutdown', 'reboot'] as const) {
    const counter = wanted[op]?.counter;
    if (counter === undefined || counter === prev[op]) continue;
    if (prev[op] !== undefined) acts.push(op);
    record[op] = counter;
  }
  return { record, changed: record.reboot !== prev.reboot || record.shutdown !== prev.shutdown, ...(acts[0] ? { act: acts[0] } : {}) };
}
