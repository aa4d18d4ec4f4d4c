// The disk queue's decisions, pure: which batches to drop when the queue is over
// its quota (the oldest outside the published window, never the newest), where
// their count goes (the first batch kept after them, so the controller sees the
// gap and its size where it happened), which batches are published, and what a
// restart finds on disk that must be cleaned up or batched again.

export interface Dropped { lines: number; batches: number; reason: string }

/** What the queue knows of one closed batch without reading it. */
export interface Queued {
  seq: number;
  /** Bytes on disk (the quota counts these). */
  bytes: number;
  lines: number;
  firstAt: string;
  /** Lines lost before this batch's own lines (agents' relays), written with the batch. */
  own?: Dropped;
}

/** Counts carried onto kept batches by quota drops, by seq. */
export type Carried = Readonly<Record<number, Dropped>>;

export function quotaReason(quotaBytes: number): string {
  const mib = quotaBytes / (1024 * 1024);
  return `log queue over its quota (${Number.isInteger(mib) ? mib : mib.toFixed(2)} MiB) while the controller was unreachable`;
}

/** The sum of two counts; each distinct reason is kept once, in order. */
export function mergeDropped(a: Dropped | undefined, b: Dropped | undefined): Dropped | undefined {
  if (!a) return b;
  if (!b) return a;
  const reasons = [...new Set([...a.reason.split('; '), ...b.reason.split('; ')])];
  return { lines: a.lines + b.lines, batches: a.batches + b.batches, reason: reasons.join('; ') };
}

/** What the controller is told was lost just before this batch. */
export function droppedBefore(b: Queued, carried: Carried): Dropped | undefined {
  return mergeDropped(b.own, carried[b.seq]);
}

export interface QuotaPlan {
  /** Seqs to delete, oldest first. */
  drop: number[];
  /** The carried counts after the drops (entries of dropped batches moved on). */
  carried: Record<number, Dropped>;
  droppedLines: number;
  droppedBatches: number;
}

/**
 * Drops the oldest batches outside the first `window` (published, waiting for the controller)
 * until the queue fits `quotaBytes`; the newest batch is always kept, so a dropped run always
 * has a kept batch after it to carry its count: its own lines plus whatever it carried.
 */
export function planQuota(queue: readonly Queued[], carried: Carried, quotaBytes: number, window: number): QuotaPlan {
  const sorted = [...queue].sort((a, b) => a.seq - b.seq);
  const next: Record<number, Dropped> = { ...carried };
  let total = sorted.reduce((s, b) => s + b.bytes, 0);
  const drop: number[] = [];
  let run: Dropped | undefined;
  let droppedLines = 0;
  let i = window;
  const reason = quotaReason(quotaBytes);
  for (; total > quotaBytes && i < sorted.length - 1; i++) {
    const b = sorted[i] as Queued;
    const before = droppedBefore(b, next);
    delete next[b.seq];
    run = mergeDropped(run, mergeDropped(before, { lines: b.lines, batches: 1, reason }));
    drop.push(b.seq);
    droppedLines += b.lines;
    total -= b.bytes;
  }
  if (run) {
    const heir = (sorted[i] as Queued).seq;
    next[heir] = mergeDropped(run, next[heir]) as Dropped;
  }
  return { drop, carried: next, droppedLines, droppedBatches: drop.length };
}

/** The batches that should be on the bus: the `window` oldest. */
export function windowSeqs(queue: readonly Queued[], window: number): number[] {
  return queue.map((b) => b.seq).sort((a, b) => a - b).slice(0, window);
}

export interface WindowPlan { publish: number[]; unpublish: number[] }

export function planWindow(queue: readonly Queued[], published: Iterable<number>, window: number): WindowPlan {
  const want = new Set(windowSeqs(queue, window));
  const have = new Set(published);
  return {
    publish: [...want].filter((s) => !have.has(s)),
    unpublish: [...have].filter((s) => !want.has(s)),
  };
}

/**
 * Where seqs go on after the ledger was rebuilt. The queue on disk may be empty while the
 * controller already holds batches up to any seq (it answers "stored already" for a seq it
 * has, and that batch would be lost), so seqs jump to the time: seconds since 1970 times 100
 * (12 digits), past anything a device sends at 100 batches a second or less. The controller
 * sees the gap.
 */
export function rebuiltNextSeq(queued: readonly number[], nowMs: number): number {
  return Math.max(Math.max(0, ...queued) + 1, Math.floor(nowMs / 1000) * 100);
}

/** What a start finds under <persist>/logmanager/. */
export interface DiskListing {
  /** Seqs of queue files. */
  queue: number[];
  /** Seqs of collect files that were being closed (collect.<seq>.ndjson). */
  closing: number[];
}

export interface RestartPlan {
  /** Queue files of a close that never committed (seq >= nextSeq), or listed as being dropped. */
  deleteQueue: number[];
  /** Closing collect files whose batches did commit. */
  deleteClosing: number[];
  /** Closing collect files to batch again (their close did not commit), oldest first. */
  rebatch: number[];
  /** Carried entries for batches that are gone. */
  staleCarried: number[];
}

/**
 * The ledger's nextSeq is the commit point of a close: a close renames the collect file to
 * collect.<nextSeq>, writes its queue files from nextSeq on, then writes the ledger with the
 * new nextSeq, then removes the collect file. Whatever a crash left behind is decided here.
 * A `rebuilt` ledger (the real one was damaged or lost) knows no commit point: every queued
 * batch is kept, and every closing file is batched again (some lines may come twice; none is lost).
 */
export function planRestart(disk: DiskListing, ledger: { nextSeq: number; dropping: readonly number[]; carried: Carried }, rebuilt = false): RestartPlan {
  if (rebuilt) return { deleteQueue: [], deleteClosing: [], rebatch: [...disk.closing].sort((a, b) => a - b), staleCarried: [] };
  const dropping = new Set(ledger.dropping);
  const deleteQueue = disk.queue.filter((s) => s >= ledger.nextSeq || dropping.has(s)).sort((a, b) => a - b);
  const kept = new Set(disk.queue.filter((s) => !deleteQueue.includes(s)));
  return {
    deleteQueue,
    deleteClosing: disk.closing.filter((s) => s < ledger.nextSeq).sort((a, b) => a - b),
    rebatch: disk.closing.filter((s) => s >= ledger.nextSeq).sort((a, b) => a - b),
    staleCarried: Object.keys(ledger.carried).map(Number).filter((s) => !kept.has(s)),
  };
}
