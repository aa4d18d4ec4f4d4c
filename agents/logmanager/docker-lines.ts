// Reading a container's output as Docker's logs API sends it (timestamps on),
// and knowing where to resume. Pure: app-logs.ts feeds it the stream's bytes.
//
// Without a TTY the stream is multiplexed in frames (1 byte stream, 3 zero bytes,
// 4 bytes big-endian length, payload); each frame is one log entry, "<RFC 3339
// nano time> <text>". An entry without a final newline is part of a longer line
// (Docker cuts lines at 16 KiB) and continues in the next entry of that stream.
// With a TTY the stream is raw: the same entries back to back, no frames.
// Of a long line only its first MAX_MSG_CHARS characters are kept (the rest is
// counted), so an app that never writes a newline cannot fill logmanager's memory.
import { cutNote, MAX_MSG_CHARS } from './levels';

export type StreamName = 'stdout' | 'stderr';

/** A line still going on past this many characters is sent as far as it goes (cut, saying so),
 *  and what follows is counted in a note per this many more, so the cursor moves on. Shorter
 *  lines wait for their end, as one line. */
export const LONG_LINE_CHARS = 1024 * 1024;
/** A TTY stream (raw, no frames) with no newline in this many bytes: they are taken as a piece of a line. */
export const TTY_PIECE_BYTES = 64 * 1024;

/** How far a container's output has been taken: the last entry's time, and how many entries had exactly that time. */
export interface Cursor { t: string; n: number }

/** One output line; time is Docker's ('' if the entry had none). `note`: the line was cut here
 *  and this says how (it follows msg as it is, and msg is not cut again). */
export interface OutputLine { stream: StreamName; time: string; msg: string; note?: string }

/** a comes before b (no cursor is before every cursor). */
export function cursorBefore(a: Cursor | undefined, b: Cursor | undefined): boolean {
  if (!b) return false;
  if (!a) return true;
  return a.t < b.t || (a.t === b.t && a.n < b.n);
}

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
 * time. The cursor moves only when a whole line is taken, or a part of a very long one sent
 * or counted (commit), so a read cut in the middle of a line takes that line again next time.
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

  /** How far the current read has admitted: where a commit now would move the cursor. */
  get position(): Cursor | undefined { return this.tentative; }

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

  /** Lines were taken: the cursor moves past them, but not past `limit` (where a line of the
   *  other stream that is still open began: one cursor serves both streams). */
  commit(limit?: { at: Cursor | undefined }): void {
    this.committed = limit && cursorBefore(limit.at, this.tentative) ? limit.at : this.tentative;
  }
}

/** A line of one stream not yet ended. */
interface OpenLine {
  /** Its first entry's time. */
  time: string;
  /** The latest entry's time. */
  last: string;
  /** Its first MAX_MSG_CHARS characters, until they are sent. */
  head: string;
  /** Characters not yet in a line sent. */
  chars: number;
  /** The gate's position before its first entry not yet in a line sent: no commit goes past it. */
  from: Cursor | undefined;
  /** Its head went out already: the rest is only counted. */
  headSent: boolean;
}

/** Splits the logs API's bytes into output lines. */
export class LogStreamParser {
  private carry: Buffer = Buffer.alloc(0);
  private readonly open: Record<StreamName, OpenLine | undefined> = { stdout: undefined, stderr: undefined };
  /** TTY: the time (with its space) of the entry being read, which Docker repeats before each piece of a cut line. */
  private ttyStamp?: Buffer;
  /** TTY: the carry starts in the middle of an entry (after a piece taken for size). */
  private ttyMid = false;

  /** tty: the container has a terminal, so the stream is raw stdout, not frames. */
  constructor(private readonly tty: boolean, private readonly gate: CursorGate) {}

  push(chunk: Buffer, out: (line: OutputLine) => void): void {
    this.carry = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    if (this.tty) {
      this.pushTty(out);
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

  /**
   * The stream ended because the container stopped: a line still open is whole as it is (an
   * app's last line without a newline), and the cursor moves past it, so a later read does
   * not take it again.
   */
  end(out: (line: OutputLine) => void): void {
    if (this.tty && this.carry.length) {
      const c = this.carry;
      this.carry = Buffer.alloc(0);
      const sp = this.ttyMid ? -1 : c.indexOf(0x20);
      const stamped = sp >= 0 && isStamp(c, 0, sp);
      this.piece('stdout', stamped ? c.toString('latin1', 0, sp) : '', c.toString('utf8', stamped ? sp + 1 : 0), false, out);
    }
    const open = (['stdout', 'stderr'] as const).flatMap((s) => {
      const o = this.open[s];
      this.open[s] = undefined;
      return o ? [{ s, o }] : [];
    });
    if (!open.length) return;
    this.commit();
    open.sort((a, b) => (cursorBefore(a.o.from, b.o.from) ? -1 : 1));
    for (const { s, o } of open) this.ended(s, o, out);
  }

  /**
   * A terminal's raw stream: "<time> <text>" entries back to back. A line Docker cut in pieces
   * has its first piece's time again before each further piece, so an entry ends at its newline
   * or where its time comes again. Past TTY_PIECE_BYTES with neither, a piece is taken anyway.
   */
  private pushTty(out: (line: OutputLine) => void): void {
    const c = this.carry;
    let off = 0;
    while (off < c.length) {
      let from = off;
      if (!this.ttyMid) {
        const sp = c.indexOf(0x20, off);
        if (sp < 0 && c.length - off <= 40) break; // its time is not all here yet
        this.ttyStamp = sp >= 0 && isStamp(c, off, sp) ? Buffer.from(c.subarray(off, sp + 1)) : undefined;
        if (this.ttyStamp) from = sp + 1;
      }
      const time = from > off ? c.toString('latin1', off, from - 1) : '';
      const nl = c.indexOf(0x0a, from);
      const again = this.ttyStamp ? c.indexOf(this.ttyStamp, from) : -1;
      if (again >= 0 && (nl < 0 || again < nl)) {
        this.piece('stdout', time, c.toString('utf8', from, again), false, out);
        off = again;
        this.ttyMid = false;
      } else if (nl >= 0) {
        const text = c.toString('utf8', from, nl > from && c[nl - 1] === 0x0d ? nl - 1 : nl);
        this.piece('stdout', time, text, true, out);
        off = nl + 1;
        this.ttyMid = false;
      } else {
        if (c.length - from >= TTY_PIECE_BYTES) {
          // No newline in sight: a piece of the line now, so the carry stays small. Bytes that
          // may begin the time's next appearance stay.
          const at = utf8Cut(c, c.length - (this.ttyStamp ? this.ttyStamp.length - 1 : 0));
          this.piece('stdout', time, c.toString('utf8', from, at), false, out);
          off = at;
          this.ttyMid = true;
        }
        break;
      }
    }
    this.carry = c.subarray(off);
  }

  /** One entry of a multiplexed stream: "<time> <text>", whole (newline) or a piece of a longer line. */
  private entry(stream: StreamName, payload: string, out: (line: OutputLine) => void): void {
    // With timestamps on, every entry starts with one ("2026-...Z "); an entry without one keeps
    // its whole text and an empty time (the caller stamps it).
    const sp = payload.indexOf(' ');
    const stamped = sp > 0 && sp <= 40 && payload.charCodeAt(sp - 1) === 0x5a && payload.charCodeAt(4) === 0x2d;
    const time = stamped ? payload.slice(0, sp) : '';
    const whole = payload.endsWith('\n');
    let text = stamped ? payload.slice(sp + 1) : payload;
    if (whole) text = text.slice(0, text.endsWith('\r\n') ? -2 : -1);
    this.piece(stream, time, text, whole, out);
  }

  /** An entry's text (without its newline): a whole line, or a piece of one. */
  private piece(stream: StreamName, time: string, text: string, whole: boolean, out: (line: OutputLine) => void): void {
    const before = this.gate.position;
    if (!this.gate.admit(time)) return;
    const open = this.open[stream];
    if (!open) {
      if (whole) {
        // The usual case: a line in one entry.
        this.commit();
        out({ stream, time, msg: text });
        return;
      }
      const o: OpenLine = { time, last: time, head: text.slice(0, MAX_MSG_CHARS), chars: text.length, from: before, headSent: false };
      this.open[stream] = o;
      this.goingOn(stream, o, out);
      return;
    }
    open.chars += text.length;
    if (time) open.last = time;
    if (!open.headSent && open.head.length < MAX_MSG_CHARS) open.head += text.slice(0, MAX_MSG_CHARS - open.head.length);
    if (whole) {
      this.open[stream] = undefined;
      this.commit();
      this.ended(stream, open, out);
      return;
    }
    this.goingOn(stream, open, out);
  }

  /** A line that goes on past LONG_LINE_CHARS: what it has so far goes out, and the cursor moves. */
  private goingOn(stream: StreamName, o: OpenLine, out: (line: OutputLine) => void): void {
    if (o.chars < LONG_LINE_CHARS) return;
    const line: OutputLine = o.headSent
      ? { stream, time: o.last, msg: '', note: `[cut: ${o.chars} more characters of the line begun at ${o.time || 'an unknown time'}]` }
      : { stream, time: o.time, msg: o.head, note: `… [cut: the line goes on past ${o.chars} characters]` };
    o.headSent = true;
    o.head = '';
    o.chars = 0;
    o.from = this.gate.position;
    this.commit();
    out(line);
  }

  /** A line ended (its newline, or the end of the stream); the caller committed. */
  private ended(stream: StreamName, o: OpenLine, out: (line: OutputLine) => void): void {
    if (o.headSent) {
      out({ stream, time: o.last, msg: '', note: `[cut: the line begun at ${o.time || 'an unknown time'} ends after ${o.chars} more characters]` });
    } else if (o.chars > MAX_MSG_CHARS) {
      out({ stream, time: o.time, msg: o.head, note: cutNote(o.chars) });
    } else {
      out({ stream, time: o.time, msg: o.head });
    }
  }

  /** Moves the cursor past what was taken, but not past a line still open on either stream. */
  private commit(): void {
    let limit: { at: Cursor | undefined } | undefined;
    for (const o of [this.open.stdout, this.open.stderr]) {
      if (o && (!limit || cursorBefore(o.from, limit.at))) limit = { at: o.from };
    }
    this.gate.commit(limit);
  }
}

/** Where to cut bytes before `end` so no UTF-8 character is split. */
function utf8Cut(buf: Buffer, end: number): number {
  for (let i = end - 1; i >= Math.max(0, end - 4); i--) {
    const b = buf[i] as number;
    if ((b & 0xc0) === 0x80) continue;
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return end - i >= need ? end : i;
  }
  return end;
}

/** Bytes off..sp look like a Docker time ("2026-...Z"). */
function isStamp(buf: Buffer, off: number, sp: number): boolean {
  return sp > off && sp - off <= 40 && buf[sp - 1] === 0x5a && buf[off + 4] === 0x2d;
}
