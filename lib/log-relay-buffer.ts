// The relay's bounded buffer: log lines on their way to logmanager, kept until
// logmanager acknowledges them, so a line is either delivered once or counted
// as dropped. Pure (no sockets, no timers): lib/log-relay.ts drives it.
//
// Records are newline-terminated strings: log lines, and drop markers that say how
// many lines were lost just before the record that follows. Acks count records
// (lines and markers) received on one connection.

import { Fifo } from './fifo';

/** Why a relay drops lines: the only time it has to. */
export const RELAY_DROP_REASON = 'agent buffer full while logmanager was away';

const MARKER_PREFIX = '{"ctl":"dropped"';

export function dropMarker(lines: number): string {
  return `${JSON.stringify({ ctl: 'dropped', lines, reason: RELAY_DROP_REASON })}\n`;
}

function markerLines(record: string): number {
  try {
    const n = (JSON.parse(record) as { lines?: unknown }).lines;
    return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

export class RelayBuffer {
  /** Written to the current connection, not yet acknowledged. */
  private inflight = new Fifo<string>();
  private unsent = new Fifo<string>();
  /** Lines dropped just before the first unsent record, not yet in a marker. */
  private droppedPending = 0;
  private acked = 0;
  private lineCount = 0;
  private byteCount = 0;
  /** Every line this buffer had to drop. */
  droppedTotal = 0;

  constructor(readonly maxLines = 5000, readonly maxBytes = 2 * 1024 * 1024) {}

  /** Lines held (sent but unacknowledged, and unsent). */
  get lines(): number { return this.lineCount; }
  get bytes(): number { return this.byteCount; }
  get hasUnsent(): boolean { return this.unsent.length > 0 || this.droppedPending > 0; }
  /** Nothing held and no drop waiting to be reported. */
  get empty(): boolean { return this.inflight.length === 0 && !this.hasUnsent; }

  /** Adds a line; past the bound the oldest unsent lines go, counted, to make room. */
  push(line: string): void {
    this.unsent.push(line);
    this.lineCount++;
    this.byteCount += line.length;
    while ((this.lineCount > this.maxLines || this.byteCount > this.maxBytes) && this.unsent.length > 0) {
      const old = this.unsent.shift() as string;
      if (old.startsWith(MARKER_PREFIX)) {
        // A marker put back after a lost connection: its count moves to the new position.
        this.droppedPending += markerLines(old);
        continue;
      }
      this.lineCount--;
      this.byteCount -= old.length;
      this.droppedPending++;
      this.droppedTotal++;
    }
  }

  /** The next records to write (about `maxBytes`), now in flight; '' when nothing is waiting. */
  take(maxBytes = 256 * 1024): string {
    const out: string[] = [];
    let size = 0;
    if (this.droppedPending > 0) {
      const marker = dropMarker(this.droppedPending);
      this.droppedPending = 0;
      this.inflight.push(marker);
      out.push(marker);
      size += marker.length;
    }
    while (this.unsent.length > 0 && size < maxBytes) {
      const s = this.unsent.shift() as string;
      this.inflight.push(s);
      out.push(s);
      size += s.length;
    }
    return out.join('');
  }

  /** logmanager has stored `total` records of this connection (a running count). */
  ack(total: number): void {
    let n = total - this.acked;
    if (n <= 0) return;
    this.acked = total;
    while (n-- > 0 && this.inflight.length > 0) {
      const s = this.inflight.shift() as string;
      if (s.startsWith(MARKER_PREFIX)) continue;
      this.lineCount--;
      this.byteCount -= s.length;
    }
  }

  /** The connection is gone: what it did not acknowledge is sent again, first, on the next one. */
  requeue(): void {
    this.acked = 0;
    if (this.inflight.length === 0) return;
    const back = this.inflight.drain();
    const rest = this.unsent.drain();
    for (const s of back) this.unsent.push(s);
    for (const s of rest) this.unsent.push(s);
  }

  /** Everything not acknowledged, in order, with the pending drop count in its place (for a spool file). */
  pending(): string {
    const parts = [...this.inflightCopy()];
    if (this.droppedPending > 0) parts.push(dropMarker(this.droppedPending));
    parts.push(...this.unsentCopy());
    return parts.join('');
  }

  private inflightCopy(): string[] {
    const all = this.inflight.drain();
    for (const s of all) this.inflight.push(s);
    return all;
  }

  private unsentCopy(): string[] {
    const all = this.unsent.drain();
    for (const s of all) this.unsent.push(s);
    return all;
  }
}
