// The relay: every zedbox process tees its log lines to logmanager over a unix
// stream socket (<run>/logmanager.sock), newline-framed, the Logger's own JSON
// line. It connects lazily, reconnects with backoff, and keeps what logmanager has
// not acknowledged in a bounded buffer (lib/log-relay-buffer.ts): a line reaches
// logmanager once or is counted as dropped. logmanager answers with the remote
// levels per source, which the Logger checks before it builds a line, so a source
// at "none" costs nothing. stderr (the device's local log) is not touched here.
//
// Protocol, one JSON object per line each way:
//   relay -> logmanager: Logger lines; {"ctl":"dropped","lines":N,"reason":...} (lines lost just before
//     the next record); {"ctl":"filtered","lines":N} (kept local by the remote level; not acknowledged).
//   logmanager -> relay: {"ctl":"levels","default":L,"sources":{name:L}}; {"ctl":"ack","records":N}
//     (N records of this connection, lines and drop markers, are stored).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { writeFileAtomicSync } from './atomic-file';
import { backoffDelay, type BackoffPolicy } from './backoff';
import { LEVEL_RANK, type Level, type RemoteLogSink } from './log';
import { RelayBuffer } from './log-relay-buffer';

export { RELAY_DROP_REASON } from './log-relay-buffer';

/** A remote level: a line level, or none. */
export type RemoteLevel = Level | 'none';
export const REMOTE_LEVELS: readonly RemoteLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'none'];

export interface RelayLevels {
  /** For sources without their own. */
  default: RemoteLevel;
  sources: Record<string, RemoteLevel>;
}

/** Until logmanager says otherwise: the config items' defaults. */
export const DEFAULT_RELAY_LEVELS: RelayLevels = { default: 'info', sources: {} };

export function logRelaySocketPath(runDir: string): string {
  return path.join(runDir, 'logmanager.sock');
}

/** Where a process leaves the lines logmanager had not taken when it exited; logmanager reads them at start. */
export function logRelaySpoolDir(persistDir: string): string {
  return path.join(persistDir, 'logmanager', 'spool');
}

export function remoteRank(level: RemoteLevel): number {
  return level === 'none' ? Infinity : LEVEL_RANK[level];
}

export function isRemoteLevel(v: unknown): v is RemoteLevel {
  return typeof v === 'string' && (REMOTE_LEVELS as readonly string[]).includes(v);
}

/** A levels line from logmanager, or undefined when it is not a valid one. */
export function parseLevels(obj: Record<string, unknown>): RelayLevels | undefined {
  if (obj.ctl !== 'levels' || !isRemoteLevel(obj.default)) return undefined;
  const sources: Record<string, RemoteLevel> = {};
  if (typeof obj.sources === 'object' && obj.sources !== null) {
    for (const [k, v] of Object.entries(obj.sources)) if (isRemoteLevel(v)) sources[k] = v;
  }
  return { default: obj.default, sources };
}

export interface LogRelayOptions {
  socketPath: string;
  /** Where unacknowledged lines go when the process exits (spoolOnExit); none: they are lost. */
  spoolDir?: string;
  maxLines?: number;
  maxBytes?: number;
  backoff?: BackoffPolicy;
  levels?: RelayLevels;
}

const RELAY_BACKOFF: BackoffPolicy = { minMs: 250, maxMs: 5000, jitter: 0.2 };
/** Written per turn of the event loop; the rest waits for the next turn or 'drain'. */
const WRITE_CHUNK = 256 * 1024;
/** Filtered counts are reported at most this often when no line goes out. */
const FILTERED_REPORT_MS = 1000;
/** The spool directory stops taking lines past this; only the drop count is kept then. */
const SPOOL_MAX_BYTES = 16 * 1024 * 1024;

export class LogRelay implements RemoteLogSink {
  readonly buffer: RelayBuffer;
  private ranks = new Map<string, number>();
  private defaultRank: number;
  private levelsNow: RelayLevels;
  private socket?: net.Socket;
  private connected = false;
  private connecting = false;
  private blocked = false;
  private flushScheduled = false;
  private retryTimer?: NodeJS.Timeout;
  private filteredTimer?: NodeJS.Timeout;
  private failures = 0;
  private filteredCount = 0;
  private closed = false;
  private readonly listeners = new Set<() => void>();
  private readonly backoff: BackoffPolicy;

  constructor(private readonly opts: LogRelayOptions) {
    this.buffer = new RelayBuffer(opts.maxLines, opts.maxBytes);
    this.backoff = opts.backoff ?? RELAY_BACKOFF;
    this.levelsNow = opts.levels ?? DEFAULT_RELAY_LEVELS;
    this.defaultRank = remoteRank(this.levelsNow.default);
    this.setLevels(this.levelsNow);
  }

  get levels(): RelayLevels { return this.levelsNow; }
  get isConnected(): boolean { return this.connected; }

  threshold(source: string): number {
    return this.ranks.get(source) ?? this.defaultRank;
  }

  send(line: string): void {
    if (this.closed) return;
    this.buffer.push(line);
    this.kick();
  }

  filtered(): void {
    if (this.closed) return;
    this.filteredCount++;
    if (!this.filteredTimer) {
      this.filteredTimer = setTimeout(() => {
        this.filteredTimer = undefined;
        this.kick();
      }, FILTERED_REPORT_MS);
      this.filteredTimer.unref();
    }
  }

  /** Called on every change of levels and ack (tests and drain() wait on it). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Connects now rather than at the first line (to learn the levels early). */
  start(): void {
    if (!this.socket && !this.retryTimer) this.connect();
  }

  /** Resolves when logmanager has acknowledged everything, or after `timeoutMs`, or at once when it is not connected. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.buffer.empty) {
      if (!this.connected || Date.now() >= deadline) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.max(1, deadline - Date.now()));
        const off = this.onChange(done);
        function done(): void { clearTimeout(t); off(); resolve(); }
      });
    }
    return true;
  }

  /** At exit, whatever logmanager did not take goes to the spool directory (it reads it at its next start). */
  spoolOnExit(): void {
    process.once('exit', () => this.spool());
  }

  /** Writes the unacknowledged lines to a spool file; returns its path, if one was written. */
  spool(): string | undefined {
    const dir = this.opts.spoolDir;
    if (!dir || this.buffer.empty) return undefined;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const used = fs.readdirSync(dir).reduce((sum, f) => sum + (fs.statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0);
      let text = this.buffer.pending();
      if (used + text.length > SPOOL_MAX_BYTES) {
        text = `${JSON.stringify({ ctl: 'dropped', lines: this.buffer.lines, reason: 'spool of lines left at exit over its limit' })}\n`;
      }
      const file = path.join(dir, `${String(Date.now()).padStart(15, '0')}-${process.pid}.ndjson`);
      writeFileAtomicSync(file, text);
      return file;
    } catch {
      return undefined; // exiting: there is nobody left to tell
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.filteredTimer);
    this.socket?.destroy();
    this.socket = undefined;
    this.connected = false;
  }

  private setLevels(levels: RelayLevels): void {
    this.levelsNow = levels;
    this.defaultRank = remoteRank(levels.default);
    this.ranks = new Map(Object.entries(levels.sources).map(([k, v]) => [k, remoteRank(v)]));
  }

  private notify(): void {
    for (const fn of this.listeners) fn();
  }

  private kick(): void {
    if (this.connected) {
      if (!this.flushScheduled && !this.blocked) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    } else if (!this.socket && !this.retryTimer && !this.closed) {
      this.connect();
    }
  }

  private connect(): void {
    if (this.closed || this.connecting) return;
    this.connecting = true;
    const socket = net.createConnection(this.opts.socketPath);
    this.socket = socket;
    socket.unref();
    socket.setEncoding('utf8');
    let carry = '';
    socket.on('connect', () => {
      this.connecting = false;
      this.connected = true;
      this.failures = 0;
      this.flush();
    });
    socket.on('data', (chunk: string) => {
      carry += chunk;
      let i: number;
      while ((i = carry.indexOf('\n')) >= 0) {
        this.onControl(carry.slice(0, i));
        carry = carry.slice(i + 1);
      }
    });
    socket.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
    socket.on('error', () => undefined); // 'close' follows; the backoff is the answer
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
      this.connecting = false;
      this.connected = false;
      this.blocked = false;
      this.buffer.requeue();
      this.notify();
      if (this.closed) return;
      // Once connected it stays so (reconnecting), to hear level changes even while quiet.
      this.failures++;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.connect();
      }, backoffDelay(this.backoff, this.failures));
      this.retryTimer.unref();
    });
  }

  private onControl(text: string): void {
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (obj.ctl === 'ack' && typeof obj.records === 'number') {
      this.buffer.ack(obj.records);
      this.notify();
    } else if (obj.ctl === 'levels') {
      const levels = parseLevels(obj);
      if (levels) {
        this.setLevels(levels);
        this.notify();
      }
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (!socket || !this.connected || this.blocked) return;
    let text = '';
    if (this.filteredCount > 0) {
      text = `${JSON.stringify({ ctl: 'filtered', lines: this.filteredCount })}\n`;
      this.filteredCount = 0;
    }
    text += this.buffer.take(WRITE_CHUNK);
    if (!text) return;
    if (!socket.write(text)) this.blocked = true;
    else if (this.buffer.hasUnsent) this.kick();
  }
}
