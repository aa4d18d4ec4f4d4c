// logmanager's end of the relay (lib/log-relay.ts): a unix socket every zedbox
// process sends its log lines to. Each chunk's records are handed to the sink,
// which stores them, and acknowledged by count once they are on disk, so a relay
// re-sends only what was not stored. The remote levels go out to every relay on connect and
// on change. Its own notes go to the local log only: a note per bad line that
// travelled back through the relay would feed itself.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { RateLimitedLog, type Logger } from '../../lib/log';
import type { RelayLevels } from '../../lib/log-relay';

export interface RelaySink {
  /** A relayed log line (the Logger's JSON, without its newline). */
  line(text: string): void;
  /** Lines a relay had to drop just before its next record. */
  dropped(lines: number, reason: string): void;
  /** Lines the remote level kept in a process's local log. */
  filtered(lines: number): void;
  /** After each chunk: what was handed over must be stored now. */
  flush(): void;
  /** `done` once what was handed over is on disk (a power cut keeps it): then it is acknowledged. */
  durable(done: () => void): void;
  /** A relay connected (a process started, or came back): lines an earlier process left in
   *  the spool go in first, so each source's lines stay in order. */
  connected(): void;
}

/** A line longer than this is cut: its first part is kept (as a warning naming the problem), the rest skipped. */
export const MAX_RELAY_LINE = 1024 * 1024;
const CLOSE_GRACE_MS = 500;

export class RelayServer {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private levelsLine?: string;
  private closing = false;
  private readonly warn: RateLimitedLog;

  constructor(readonly socketPath: string, private readonly sink: RelaySink, log: Logger) {
    this.warn = new RateLimitedLog(log.local(), 60_000);
  }

  get connections(): number { return this.sockets.size; }

  async start(): Promise<void> {
    // A socket file left by an earlier run; only one logmanager runs (its bus endpoint is locked).
    fs.rmSync(this.socketPath, { force: true });
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(this.socketPath, 0o600);
  }

  /** The levels every relay applies; sent now and to each relay that connects later. */
  setLevels(levels: RelayLevels): void {
    const line = `${JSON.stringify({ ctl: 'levels', default: levels.default, sources: levels.sources })}\n`;
    if (line === this.levelsLine) return;
    this.levelsLine = line;
    for (const s of this.sockets) s.write(line);
  }

  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Acks waiting for the disk go out first; what was not stored is the relays' to send again.
    await new Promise<void>((resolve) => this.sink.durable(resolve));
    for (const s of this.sockets) s.end();
    const timer = setTimeout(() => { for (const s of this.sockets) s.destroy(); }, CLOSE_GRACE_MS);
    await closed;
    clearTimeout(timer);
    fs.rmSync(this.socketPath, { force: true });
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sink.connected();
    this.sockets.add(socket);
    socket.setEncoding('utf8');
    if (this.levelsLine) socket.write(this.levelsLine);
    let carry = '';
    let skipping = false;
    let records = 0;
    let acked = 0;
    socket.on('data', (chunk: string) => {
      if (this.closing) return;
      let start = 0;
      let nl: number;
      while ((nl = chunk.indexOf('\n', start)) >= 0) {
        const piece = chunk.slice(start, nl);
        start = nl + 1;
        if (skipping) {
          skipping = false;
          carry = '';
          records++;
          continue;
        }
        const text = carry ? carry + piece : piece;
        carry = '';
        if (relayRecord(text, this.sink)) records++;
      }
      if (start < chunk.length && !skipping) {
        carry += chunk.slice(start);
        if (carry.length > MAX_RELAY_LINE) {
          // Kept as a line that is not valid JSON: the queue stores it as a warning saying so.
          this.sink.line(carry.slice(0, MAX_RELAY_LINE));
          this.warn.warn('long', 'a relayed line over the limit was cut', { limit: MAX_RELAY_LINE });
          carry = '';
          skipping = true;
        }
      }
      this.sink.flush();
      if (records > acked) {
        const upTo = records;
        acked = upTo;
        // Acks are a running count, and waiters run in order: a later ack never overtakes.
        this.sink.durable(() => { if (!socket.destroyed) socket.write(`{"ctl":"ack","records":${upTo}}\n`); });
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.sockets.delete(socket));
  }
}

/** One record from a relay (or its spool file) into the sink; false when it is not counted in acks (a filtered count). */
export function relayRecord(text: string, sink: RelaySink): boolean {
  if (!text.startsWith('{"ctl":')) {
    sink.line(text);
    return true;
  }
  let ctl: { ctl?: unknown; lines?: unknown; reason?: unknown };
  try {
    ctl = JSON.parse(text) as typeof ctl;
  } catch {
    sink.line(text);
    return true;
  }
  const lines = typeof ctl.lines === 'number' && Number.isSafeInteger(ctl.lines) && ctl.lines > 0 ? ctl.lines : 0;
  if (ctl.ctl === 'filtered') {
    if (lines) sink.filtered(lines);
    return false;
  }
  if (ctl.ctl === 'dropped') {
    if (lines) sink.dropped(lines, typeof ctl.reason === 'string' && ctl.reason ? ctl.reason : 'dropped by a relay');
    return true;
  }
  // Not ours: kept as a line, which the queue stores as a warning naming the problem.
  sink.line(text);
  return true;
}
