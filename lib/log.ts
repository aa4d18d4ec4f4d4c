// Structured logging: one JSON object per line on stderr, as EVE's agentlog does,
// so logmanager can later collect every agent's lines without parsing prose.
import { performance } from 'node:perf_hooks';

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };

export type Fields = Record<string, unknown>;

export interface LogSink {
  write(line: string): void;
}

export interface LoggerOptions {
  source: string;
  level?: Level;
  format?: 'json' | 'text';
  sink?: LogSink;
}

const stderrSink: LogSink = { write: (line) => process.stderr.write(line) };

export class Logger {
  readonly source: string;
  private readonly threshold: number;
  private readonly format: 'json' | 'text';
  private readonly sink: LogSink;
  private readonly opts: LoggerOptions;

  constructor(opts: LoggerOptions) {
    this.opts = opts;
    this.source = opts.source;
    this.threshold = RANK[opts.level ?? 'info'];
    this.format = opts.format ?? 'json';
    this.sink = opts.sink ?? stderrSink;
  }

  /** A logger for another source (an agent) with the same level, format and sink. */
  child(source: string): Logger {
    return new Logger({ ...this.opts, source });
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.threshold;
  }

  trace(msg: string, fields?: Fields): void { this.emit('trace', msg, fields); }
  debug(msg: string, fields?: Fields): void { this.emit('debug', msg, fields); }
  info(msg: string, fields?: Fields): void { this.emit('info', msg, fields); }
  warn(msg: string, fields?: Fields): void { this.emit('warn', msg, fields); }
  error(msg: string, fields?: Fields): void { this.emit('error', msg, fields); }

  private emit(level: Level, msg: string, fields?: Fields): void {
    if (RANK[level] < this.threshold) return;
    const time = new Date().toISOString();
    if (this.format === 'text') {
      const extra = fields && Object.keys(fields).length ? ' ' + safeJson(fields) : '';
      this.sink.write(`${time} ${level.toUpperCase().padEnd(5)} ${this.source}: ${msg}${extra}\n`);
      return;
    }
    const core = { time, level, source: this.source, pid: process.pid, msg };
    // Core fields come first for people and win over same-named fields for machines.
    this.sink.write(safeJson(fields ? { ...core, ...fields, ...core } : core) + '\n');
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
