// The open batch: lines in arrival order (so order is kept per source), when it
// must close, and its compression into one or more gzip parts that each fit a bus
// value. No I/O: the queue writes what this returns.
import { gzipSync } from 'node:zlib';
import { LOG_BATCH_MAX_GZIP_BYTES } from '../../pubsub/collections/logs';
import { mergeDropped, type Dropped } from './queue-plan';

/** A part is cut again when its gzip passes this (the rest of the bus value is metadata and base64). */
export const PART_MAX_GZIP = LOG_BATCH_MAX_GZIP_BYTES;
/** An open batch closes at this many lines whatever their size. */
export const MAX_BATCH_LINES = 20_000;
/** Bounds on the raw bytes an open batch may hold (the estimate of what fits one part moves between them). */
const MIN_RAW_CAP = 64 * 1024;
const MAX_RAW_CAP = 2 * 1024 * 1024;
/** Aim below the limit, so an estimate a little off rarely means compressing twice. */
const FILL = 0.85;

export interface BatchPart {
  lines: number;
  rawBytes: number;
  firstAt: string;
  lastAt: string;
  gzip: Buffer;
  /** The open batch's dropped count (relay drops), on its first part only. */
  droppedBefore?: Dropped;
}

export class OpenBatch {
  private lines: string[] = [];
  private times: string[] = [];
  private raw = 0;
  private dropped?: Dropped;
  /** When the first line (or drop) arrived, in the caller's clock (ms). */
  openedAt?: number;

  get lineCount(): number { return this.lines.length; }
  get rawBytes(): number { return this.raw; }
  get empty(): boolean { return this.lines.length === 0 && !this.dropped; }

  add(json: string, time: string, now: number): void {
    this.openedAt ??= now;
    this.lines.push(json);
    this.times.push(time);
    this.raw += json.length + 1;
  }

  addDropped(d: Dropped, now: number): void {
    this.openedAt ??= now;
    this.dropped = mergeDropped(this.dropped, d);
  }

  /** Full: the line cap, or raw bytes past what should compress to about one part. */
  full(rawCap: number): boolean {
    return this.lines.length >= MAX_BATCH_LINES || this.raw >= rawCap;
  }

  due(now: number, timerMs: number): boolean {
    return this.openedAt !== undefined && now - this.openedAt >= timerMs;
  }

  /** Takes everything out as compressed parts and leaves the batch empty. */
  close(): BatchPart[] {
    const parts = compressParts(this.lines, this.times);
    if (parts[0] && this.dropped) parts[0].droppedBefore = this.dropped;
    this.lines = [];
    this.times = [];
    this.raw = 0;
    this.dropped = undefined;
    this.openedAt = undefined;
    return parts;
  }
}

/** Compresses lines as NDJSON; a part over the limit is split in halves until each fits. */
export function compressParts(lines: readonly string[], times: readonly string[]): BatchPart[] {
  const text = lines.length ? lines.join('\n') + '\n' : '';
  const gzip = gzipSync(text);
  if (gzip.length <= PART_MAX_GZIP || lines.length <= 1) {
    const [firstAt, lastAt] = span(times);
    return [{ lines: lines.length, rawBytes: Buffer.byteLength(text), firstAt, lastAt, gzip }];
  }
  const mid = Math.ceil(lines.length / 2);
  return [...compressParts(lines.slice(0, mid), times.slice(0, mid)), ...compressParts(lines.slice(mid), times.slice(mid))];
}

/** Earliest and latest of the lines' times (lines from several sources need not arrive in time order). */
function span(times: readonly string[]): [string, string] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of times) {
    const ms = Date.parse(t);
    if (Number.isNaN(ms)) continue;
    if (ms < lo) lo = ms;
    if (ms > hi) hi = ms;
  }
  if (lo === Infinity) {
    const now = new Date().toISOString();
    return [now, now];
  }
  return [new Date(lo).toISOString(), new Date(hi).toISOString()];
}

/** Learns how well lines compress, to cut batches that come out near one part. */
export class RatioEstimate {
  private ratio = 6;

  observe(rawBytes: number, gzipBytes: number): void {
    if (rawBytes < 4096 || gzipBytes === 0) return; // too small to say anything
    this.ratio = 0.7 * this.ratio + 0.3 * (rawBytes / gzipBytes);
  }

  rawCap(): number {
    return Math.max(MIN_RAW_CAP, Math.min(MAX_RAW_CAP, Math.floor(PART_MAX_GZIP * FILL * this.ratio)));
  }
}
