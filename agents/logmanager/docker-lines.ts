// Reading a container's output as Docker's logs API sends it (timestamps on),
// and knowing where to resume. Pure: app-logs.ts feeds it the stream's bytes.
//
// Without a TTY the stream is multiplexed in frames (1 byte stream, 3 zero bytes,
// 4 bytes big-endian length, payload); each frame is one log entry, "<RFC 3339
// nano time> <text>". An entry without a final newline is part of a longer line
// (Docker cuts lines at 16 KiB) and continues in the next entry of that stream.

export type StreamName = 'stdout' | 'stderr';

/** How far a container's output has been taken: the last entry's time, and how many entries had exactly that time. */
export interface Cursor { t: string; n: number }

/** One whole output line; time is Docker's ('' if the entry had none). */
export interface OutputLine { stream: StreamName; time: string; msg: string }

const TS = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/;

/** Docker's time with the fraction at nine digits, so times compare as strings (Docker trims its zeros). */
export function normTime(ts: string): string | undefined {
  const m = TS.exec(ts);
  return m ? `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}Z` : undefined;
}

/** A cursor as the logs API's `since` (seconds.nanoseconds); entries at exactly that time come again. */
export function sinceOf(c: Cursor): string {
  const m = TS.exec(c.t);
  if (!m) return '0';
  const secs = Math.floor(Date.parse(`${m[1]}Z`) / 1000);
  return `${secs}.${(m[2] ?? '').padEnd(9, '0')}`;
}

/**
 * Skips what a resumed read sends again: entries before the cursor, and the first n at its
 * time. The cursor moves only when a whole line is taken (commit), so a read cut in the
 * middle of a long line takes the whole line again next time.
 */
export class CursorGate {
  private committed?: Cursor;
  private tentative?: Cursor;
  /** Where the current read started, and how many entries at that exact time it has skipped. */
  private from?: Cursor;
  private skipped = 0;
  private passed = false;

  constructor(start?: Cursor) {
    this.committed = start;
    this.restart();
  }

  get cursor(): Cursor | undefined { return this.committed; }

  /** A new read starts (from the committed cursor). */
  restart(): void {
    this.from = this.committed;
    this.tentative = this.committed;
    this.skipped = 0;
    this.passed = false;
  }

  /** False: this entry was taken before. Entries come in time order within a read. */
  admit(time: string): boolean {
    const t = normTime(time);
    if (t === undefined) return true;
    const from = this.from;
    if (!this.passed && from) {
      if (t < from.t) return false;
      if (t === from.t && this.skipped < from.n) {
        this.skipped++;
        return false;
      }
    }
    this.passed = true;
    const cur = this.tentative;
    this.tentative = cur && cur.t === t ? { t, n: cur.n + 1 } : { t, n: 1 };
    return true;
  }

  /** A whole line was taken: the cursor moves past it. */
  commit(): void {
    this.committed = this.tentative;
  }
}

/** Splits the logs API's bytes into whole output lines. */
export class LogStreamParser {
  private carry: Buffer = Buffer.alloc(0);
  private readonly partial: Record<StreamName, { time: string; parts: string[] } | undefined> = { stdout: undefined, stderr: undefined };

  /** tty: the container has a terminal, so the stream is raw stdout, not frames. */
  constructor(private readonly tty: boolean, private readonly gate: CursorGate) {}

  push(chunk: Buffer, out: (line: OutputLine) => void): void {
    this.carry = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    if (this.tty) {
      let start = 0;
      let nl: number;
      while ((nl = this.carry.indexOf(0x0a, start)) >= 0) {
        this.entry('stdout', this.carry.subarray(start, nl + 1).toString('utf8'), out);
        start = nl + 1;
      }
      this.carry = this.carry.subarray(start);
      return;
    }
    let off = 0;
    while (off + 8 <= this.carry.length) {
      const kind = this.carry[off];
      const len = this.carry.readUInt32BE(off + 4);
      if (off + 8 + len > this.carry.length) break;
      const payload = this.carry.subarray(off + 8, off + 8 + len).toString('utf8');
      off += 8 + len;
      if (kind === 1 || kind === 2) this.entry(kind === 2 ? 'stderr' : 'stdout', payload, out);
    }
    this.carry = this.carry.subarray(off);
  }

  /** One entry: "<time> <text>", whole (newline) or a piece of a longer line. */
  private entry(stream: StreamName, payload: string, out: (line: OutputLine) => void): void {
    // With timestamps on, every entry starts with one ("2026-...Z "); an entry without one keeps
    // its whole text and an empty time (the caller stamps it).
    const sp = payload.indexOf(' ');
    const stamped = sp > 0 && sp <= 40 && payload.charCodeAt(sp - 1) === 0x5a && payload.charCodeAt(4) === 0x2d;
    const time = stamped ? payload.slice(0, sp) : '';
    const whole = payload.endsWith('\n');
    let text = stamped ? payload.slice(sp + 1) : payload;
    if (whole) text = text.slice(0, text.endsWith('\r\n') ? -2 : -1);
    if (!this.gate.admit(time)) return;
    const pending = this.partial[stream];
    if (!whole) {
      if (pending) pending.parts.push(text);
      else this.partial[stream] = { time, parts: [text] };
      return;
    }
    this.partial[stream] = undefined;
    const msg = pending ? pending.parts.join('') + text : text;
    this.gate.commit();
    out({ stream, time: pending?.time ?? time, msg });
  }
}
