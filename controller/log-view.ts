// What `zedctl logs` prints: a device's stored log batches (log-store.ts) in seq
// order, one line per log line, with a marker where the device dropped lines and
// where batches are missing; and --follow, which keeps printing batches as they
// are stored, reading the state dir directly so it works beside `zedctl serve`.
// LogPrinter is pure (batches in, text out); followLogs does the reading.
import * as fs from 'node:fs';
import type { LogLine } from '../api/logs';
import { decodeBatch, type LogStore, type StoredLogBatch } from './log-store';

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LEVELS)[number];

export interface LogFilter {
  /** An app's name or id. */
  app?: string;
  source?: string;
  /** The least severe level shown. */
  level?: LogLevel;
  /** Lines written at or after this time (ms since the epoch). */
  sinceMs?: number;
}

/** `<time> <source>[/<app>] <LEVEL> <msg>` and the fields as key=value. */
export function lineText(l: LogLine): string {
  const fields: string[] = [];
  if (l.stream === 'stderr') fields.push('stream=stderr');
  for (const [k, v] of Object.entries(l.fields ?? {})) fields.push(`${k}=${fieldValue(v)}`);
  const who = escapeControls(l.app ? `${l.source}/${l.app}` : l.source);
  return `${l.time} ${who} ${l.level.toUpperCase()} ${escapeControls(l.msg)}${fields.length ? ` ${fields.join(' ')}` : ''}`;
}

function fieldValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? escapeControls(v) : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * One log line stays one output line, and an app's output cannot drive the operator's terminal:
 * newlines become \n, every other control character (ESC, C1, DEL; not tab) \xNN.
 */
export function escapeControls(text: string): string {
  return text.replace(/\r?\n/g, '\\n').replace(/\r/g, '\\r')
    .replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function droppedText(d: NonNullable<StoredLogBatch['droppedBefore']>): string {
  const batches = d.batches ? ` in ${d.batches} batch${d.batches === 1 ? '' : 'es'}` : '';
  return `-- ${d.lines} line${d.lines === 1 ? '' : 's'}${batches} dropped on the device (${d.reason}) --`;
}

export function missingText(from: number, to: number): string {
  return from === to ? `-- batch ${from} missing --` : `-- batches ${from}-${to} missing --`;
}

export function lineMatches(l: LogLine, f: LogFilter): boolean {
  if (f.app !== undefined && l.app !== f.app && l.appId !== f.app) return false;
  if (f.source !== undefined && l.source !== f.source) return false;
  if (f.level !== undefined && LEVELS.indexOf(l.level) < LEVELS.indexOf(f.level)) return false;
  if (f.sinceMs !== undefined && !(Date.parse(l.time) >= f.sinceMs)) return false;
  return true;
}

/**
 * Turns batches, given in seq order, into output lines: the lines that pass the filter, a drop
 * marker before a batch that says lines were dropped before it, and a missing marker for seqs
 * skipped that no drop explains. Markers are shown whatever the filter (lost lines may be any).
 */
export class LogPrinter {
  /** The last seq printed (or passed over); missing markers are relative to it. */
  last: number | undefined;

  constructor(private readonly filter: LogFilter, private readonly json: boolean, private readonly out: (line: string) => void) {}

  batch(b: StoredLogBatch): void {
    if (this.filter.sinceMs !== undefined && Date.parse(b.lastAt) < this.filter.sinceMs) {
      this.last = b.seq; // wholly before --since, and so are its drops (a gap after it may not be)
      return;
    }
    const prev = this.last;
    this.last = b.seq;
    if (prev !== undefined && b.seq > prev + 1) {
      const skipped = b.seq - prev - 1;
      const explained = Math.min(skipped, b.droppedBefore?.batches ?? 0);
      if (skipped > explained) this.missing(prev + 1, b.seq - 1 - explained);
    }
    if (b.droppedBefore && (b.droppedBefore.lines > 0 || b.droppedBefore.batches > 0)) {
      this.out(this.json ? JSON.stringify({ seq: b.seq, dropped: b.droppedBefore }) : droppedText(b.droppedBefore));
    }
    const decoded = decodeBatch(b.gzip);
    if (!decoded.ok) {
      // Checked when it was stored; a file damaged since is shown, not fatal.
      this.out(this.json ? JSON.stringify({ seq: b.seq, unreadable: decoded.error }) : `-- batch ${b.seq} unreadable: ${decoded.error} --`);
      return;
    }
    for (const l of decoded.lines) {
      if (lineMatches(l, this.filter)) this.out(this.json ? JSON.stringify({ seq: b.seq, ...l }) : lineText(l));
    }
  }

  /** Seqs given up on (--follow moved past them). */
  missing(from: number, to: number): void {
    this.out(this.json ? JSON.stringify({ missing: { from, to } }) : missingText(from, to));
  }

  /** A batch that arrived after --follow had moved past its seq. */
  late(b: StoredLogBatch): void {
    this.out(this.json ? JSON.stringify({ late: b.seq }) : `-- batch ${b.seq} arrived late --`);
    const last = this.last;
    this.last = undefined;
    this.batch({ ...b, droppedBefore: undefined });
    this.last = last;
  }
}

/** Prints every stored batch; the printer then knows the last seq. */
export function printStored(store: LogStore, uuid: string, printer: LogPrinter): void {
  for (const seq of store.seqs(uuid)) {
    const b = store.read(uuid, seq);
    if (b) printer.batch(b);
  }
}

export interface FollowOptions {
  /** How long a missing seq is waited for before the batches after it are printed. */
  gapWaitMs: number;
  /** Poll interval when the directory cannot be watched (and as a safety net when it can). */
  pollMs: number;
}

export const FOLLOW_DEFAULTS: FollowOptions = { gapWaitMs: 2000, pollMs: 500 };

/**
 * Keeps printing batches as they are stored, in seq order: a batch after a missing seq waits up to
 * gapWaitMs for it (the device sends a few at once, and a replica may store them out of order).
 */
export async function followLogs(store: LogStore, uuid: string, printer: LogPrinter, signal: AbortSignal, opts: FollowOptions = FOLLOW_DEFAULTS): Promise<void> {
  // Seqs reported missing, as ranges (a gap may be huge: a device whose seqs jumped), each printed late once if it comes.
  const given: Array<[number, number]> = [];
  const lateShown = new Set<number>();
  const wasGiven = (seq: number): boolean => !lateShown.has(seq) && given.some(([a, b]) => seq >= a && seq <= b);
  let waitingSince: number | undefined;
  let watcher: fs.FSWatcher | undefined;
  let wake: (() => void) | undefined;
  const watch = (): void => {
    if (watcher) return;
    try {
      watcher = fs.watch(store.dirOf(uuid), () => wake?.());
      watcher.on('error', () => { watcher?.close(); watcher = undefined; });
    } catch {
      watcher = undefined; // no directory yet: polled until the first batch makes it
    }
  };
  try {
    while (!signal.aborted) {
      watch();
      const seqs = store.seqs(uuid);
      const last = printer.last ?? 0;
      for (const seq of seqs) {
        if (seq >= last || !wasGiven(seq)) continue;
        lateShown.add(seq);
        const b = store.read(uuid, seq);
        if (b) printer.late(b);
      }
      let blocked = false;
      for (const next of seqs) {
        if (printer.last !== undefined && next <= printer.last) continue;
        const expected = printer.last === undefined ? next : printer.last + 1;
        if (next !== expected) {
          waitingSince ??= Date.now();
          if (Date.now() - waitingSince < opts.gapWaitMs) {
            blocked = true;
            break;
          }
          given.push([expected, next - 1]);
        }
        waitingSince = undefined;
        const b = store.read(uuid, next);
        if (b) printer.batch(b);
        else printer.last = next; // deleted by retention between listing and reading
      }
      if (!blocked) waitingSince = undefined;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, waitingSince !== undefined ? Math.min(opts.pollMs, opts.gapWaitMs) : opts.pollMs);
        wake = done;
        signal.addEventListener('abort', done);
      });
    }
  } finally {
    watcher?.close();
  }
}
