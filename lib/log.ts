// Structured logging: one JSON object per line on stderr, as EVE's agentlog does,
// and, through a remote sink (lib/log-relay.ts), to logmanager, which sends them
// on to the controller. Each side has its own threshold: the local one (-d) keeps
// the console quiet, the remote one (config items) decides what the controller gets.
import { performance } from 'node:perf_hooks';

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export const LEVEL_RANK: Readonly<Record<Level, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };
const RANK = LEVEL_RANK;

export type Fields = Record<string, unknown>;

export interface LogSink {
  write(line: string): void;
}

/** Where lines for the controller go (logmanager's relay). */
export interface RemoteLogSink {
  /** The lowest rank the remote side wants from `source` (Infinity: nothing). Called per line: keep it cheap. */
  threshold(source: string): number;
  /** A JSON line (newline-terminated) that passed the remote threshold. */
  send(line: string): void;
  /** A line went to the local log only: the remote threshold kept it back. */
  filtered(): void;
}

export interface LoggerOptions {
  source: string;
  /** The local threshold (the sink, stderr by default). */
  level?: Level;
  format?: 'json' | 'text';
  sink?: LogSink;
  /** Lines at or above its threshold for this source go there too, whatever the local threshold. */
  remote?: RemoteLogSink;
}

const stderrSink: LogSink = { write: (line) => process.stderr.write(line) };

export class Logger {
  readonly source: string;
  private readonly threshold: number;
  private readonly format: 'json' | 'text';
  private readonly sink: LogSink;
  private readonly remote?: RemoteLogSink;
  private readonly opts: LoggerOptions;

  constructor(opts: LoggerOptions) {
    this.opts = opts;
    this.source = opts.source;
    this.threshold = RANK[opts.level ?? 'info'];
    this.format = opts.format ?? 'json';
    this.sink = opts.sink ?? stderrSink;
    this.remote = opts.remote;
  }

  /** A logger for another source (an agent) with the same level, format and sinks. */
  child(source: string): Logger {
    return new Logger({ ...this.opts, source });
  }

  /** The same logger without its remote sink: for lines that must not travel back through it
   *  (logmanager's own notes about the relay would otherwise feed themselves). */
  local(): Logger {
    return this.remote ? new Logger({ ...this.opts, remote: undefined }) : this;
  }

  /** Whether a line at `level` goes anywhere (the local log or the controller). */
  enabled(level: Level): boolean {
    return RANK[level] >= this.threshold || (this.remote !== undefined && RANK[level] >= this.remote.threshold(this.source));
  }

  trace(msg: string, fields?: Fields): void { this.emit('trace', msg, fields); }
  debug(msg: string, fields?: Fields): void { this.emit('debug', msg, fields); }
  info(msg: string, fields?: Fields): void { this.emit('info', msg, fields); }
  warn(msg: string, fields?: Fields): void { this.emit('warn', msg, fields); }
  error(msg: string, fields?: Fields): void { this.emit('error', msg, fields); }

  private emit(level: Level, msg: string, fields?: Fields): void {
    const rank = RANK[level];
    const local = rank >= this.threshold;
    const remote = this.remote !== undefined && rank >= this.remote.threshold(this.source);
    if (!local && !remote) return;
    const time = new Date().toISOString();
    let json: string | undefined;
    if (remote || this.format === 'json') {
      const core = { time, level, source: this.source, pid: process.pid, msg };
      // Core fields come first for people and win over same-named fields for machines.
      json = safeJson(fields ? { ...core, ...fields, ...core } : core) + '\n';
    }
    if (local) {
      if (this.format === 'text') {
        const extra = fields && Object.keys(fields).length ? ' ' + safeJson(fields) : '';
        this.sink.write(`${time} ${level.toUpperCase().padEnd(5)} ${this.source}: ${msg}${extra}\n`);
      } else {
        this.sink.write(json as string);
      }
    }
    if (remote) this.remote?.send(json as string);
    else if (local) this.remote?.filtered();
  }
}

/** Errors become {name, message, stack}; cycles and BigInts never make logging throw. */
function safeJson(obj: unknown): string {
  return JSON.stringify(toPlain(obj, new Set()));
}

/** Only objects on the current path are cycles; one object referenced twice is logged twice. */
function toPlain(v: unknown, path: Set<object>): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v !== 'object' || v === null) return v;
  if (path.has(v)) return '[cycle]';
  if (v instanceof Error) return { name: v.name, message: v.message, stack: v.stack };
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return (v as { toJSON(): unknown }).toJSON();
  path.add(v);
  try {
    if (Array.isArray(v)) return v.map((x) => toPlain(x, path));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = toPlain(x, path);
    return out;
  } finally {
    path.delete(v);
  }
}

/** Logs at most one line per key and interval, counting what it suppressed. */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly log: Logger, private readonly intervalMs = 5000) {}

  warn(key: string, msg: string, fields?: Fields): void {
    const now = performance.now(); // monotonic: a wall-clock step back must not mute the log
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.log.warn(msg, suppressed ? { ...fields, suppressedSinceLast: suppressed } : fields);
  }
}
