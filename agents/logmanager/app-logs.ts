// The apps' output: one follower per container DomainStatus names, reading the
// engine's logs API (follow, timestamps) from the container's cursor, so a
// restart of logmanager resumes without losing or repeating a line. A container
// that stops ends its stream; the follower waits for a change in its DomainStatus
// (restarted, the same id) or polls with backoff. A container no longer named is
// followed a little longer (its last lines), then dropped, and its cursor forgotten
// once the engine no longer has it.
import type Docker from 'dockerode';
import { backoffDelay, type BackoffPolicy } from '../../lib/backoff';
import { isDockerNoop } from '../../lib/docker';
import { RateLimitedLog, type Logger } from '../../lib/log';
import type { DomainStatus } from '../../pubsub/collections/apps';
import { CursorGate, LogStreamParser, sinceOf, type Cursor, type OutputLine } from './docker-lines';

export interface AppContainer { appId: string; name: string; containerId: string }

export interface AppLogsDeps {
  docker: Docker;
  /** Per container; shared with the queue, which persists them with the lines. */
  cursors: Map<string, Cursor>;
  onLine(app: AppContainer, line: OutputLine): void;
  log: Logger;
  /** Waits between reads of a container that is not running (or failed); grows while nothing changes. */
  idle?: BackoffPolicy;
  /** How long a container no longer named is still read. */
  retireGraceMs?: number;
}

const IDLE: BackoffPolicy = { minMs: 1000, maxMs: 30_000, jitter: 0.2 };

class Follower {
  private readonly abort = new AbortController();
  private wake?: () => void;
  private stopped = false;
  /** AppLogs stops: nothing more is asked of the engine. */
  private shutdown = false;
  private retiring = false;
  private retireTimer?: NodeJS.Timeout;
  private graceOver?: () => void;
  /** The container is gone from the engine: nothing more will come. */
  gone = false;
  readonly done: Promise<void>;

  constructor(public target: AppContainer, private readonly deps: AppLogsDeps, private readonly warn: RateLimitedLog) {
    this.done = this.run();
  }

  kick(): void {
    this.wake?.();
  }

  /** No longer named: read a little longer, then stop and forget the cursor if the container is gone. */
  retire(graceMs: number): void {
    if (this.retiring) return;
    this.retiring = true;
    this.wake?.();
    this.retireTimer = setTimeout(() => {
      this.stop();
      this.graceOver?.();
    }, graceMs);
  }

  stop(shutdown = false): void {
    this.stopped = true;
    if (shutdown) {
      this.shutdown = true;
      clearTimeout(this.retireTimer);
      this.graceOver?.();
    }
    this.abort.abort();
    this.wake?.();
  }

  private async run(): Promise<void> {
    const grace = new Promise<void>((resolve) => { this.graceOver = resolve; });
    await this.loop();
    if (!this.retiring || this.gone || this.shutdown) return;
    // A retired container's cursor is forgotten once the engine no longer has it (checked once,
    // when its grace period ends); one still there (stopped, say) keeps it.
    await grace;
    if (this.shutdown) return;
    const id = this.target.containerId;
    try {
      await this.deps.docker.getContainer(id).inspect({ abortSignal: AbortSignal.timeout(10_000) });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        this.gone = true;
        this.deps.cursors.delete(id);
      }
    }
  }

  private async loop(): Promise<void> {
    const { docker, cursors } = this.deps;
    const id = this.target.containerId;
    const container = docker.getContainer(id);
    const gate = new CursorGate(cursors.get(id));
    // The cursor first: a line that closes a batch goes with the cursor past it.
    const onLine = (line: OutputLine): void => {
      if (gate.cursor) cursors.set(id, gate.cursor);
      this.deps.onLine(this.target, line);
    };
    let idle = 0;
    while (!this.stopped) {
      gate.restart();
      try {
        const info = await container.inspect({ abortSignal: this.abort.signal });
        const from = gate.cursor;
        const stream = await container.logs({
          follow: true, stdout: true, stderr: true, timestamps: true,
          ...(from ? { since: sinceOf(from) } : {}),
          abortSignal: this.abort.signal,
        });
        const parser = new LogStreamParser(info.Config?.Tty === true, gate);
        await consume(stream, (chunk) => parser.push(chunk, onLine));
        // The stream ended. If the container stopped (or started again since), a last line
        // without a newline is whole: taken now, or every later read would hold it back again.
        if (!this.stopped) {
          const now = await container.inspect({ abortSignal: this.abort.signal }).catch((err: unknown) => {
            if (isDockerNoop(err)) return undefined; // removed: its last line is taken all the same
            throw err;
          });
          if (!now?.State?.Running || now.State.StartedAt !== info.State?.StartedAt) parser.end(onLine);
        }
        idle++;
      } catch (err) {
        if (this.stopped) break;
        if (isDockerNoop(err)) {
          this.gone = true;
          cursors.delete(id);
          break;
        }
        idle++;
        this.warn.warn(id, 'cannot read a container\'s output; retrying', { app: this.target.name, container: id.slice(0, 12), error: (err as Error).message });
      }
      if (this.stopped || this.retiring) break;
      await this.sleep(backoffDelay(this.deps.idle ?? IDLE, idle));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done(): void { clearTimeout(t); self.wake = undefined; resolve(); }
      this.wake = done;
    });
  }
}

/** Until the stream ends (the container stopped, or the read was aborted). */
function consume(stream: NodeJS.ReadableStream, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('data', (c: Buffer | string) => onChunk(typeof c === 'string' ? Buffer.from(c) : c));
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
}

export class AppLogs {
  private readonly followers = new Map<string, { f: Follower; mark: string }>();
  /** No longer named, still reading their last lines. */
  private readonly retiring = new Set<Follower>();
  private readonly warn: RateLimitedLog;

  constructor(private readonly deps: AppLogsDeps) {
    this.warn = new RateLimitedLog(deps.log, 60_000);
  }

  /** The containers to follow: every DomainStatus with a container. */
  update(statuses: Iterable<Readonly<DomainStatus>>): void {
    const named = new Set<string>();
    for (const s of statuses) {
      if (!s.containerId) continue;
      named.add(s.containerId);
      // A restart of the same container changes these: read it again.
      const mark = `${s.state}|${s.startedAt ?? ''}|${s.restarts}`;
      const target = { appId: s.appId, name: s.name, containerId: s.containerId };
      const had = this.followers.get(s.containerId);
      if (!had) {
        this.followers.set(s.containerId, { f: new Follower(target, this.deps, this.warn), mark });
      } else {
        had.f.target = target;
        if (had.mark !== mark) {
          had.mark = mark;
          had.f.kick();
        }
      }
    }
    for (const [id, { f }] of this.followers) {
      if (named.has(id)) continue;
      this.followers.delete(id);
      this.retiring.add(f);
      void f.done.then(() => this.retiring.delete(f));
      f.retire(this.deps.retireGraceMs ?? 5000);
    }
  }

  get following(): number {
    return [...this.followers.values()].filter(({ f }) => !f.gone).length;
  }

  /**
   * At start: forgets the cursors of containers the engine no longer has (removed while
   * logmanager was not running). Only those known before the engine is asked: a follower
   * may add one meanwhile. An engine that does not answer changes nothing.
   */
  async pruneCursors(): Promise<number> {
    const known = [...this.deps.cursors.keys()];
    if (!known.length) return 0;
    let ids: string[];
    try {
      ids = (await this.deps.docker.listContainers({ all: true, abortSignal: AbortSignal.timeout(30_000) })).map((c) => c.Id);
    } catch (err) {
      this.deps.log.warn('cannot list containers; old container cursors kept', { error: (err as Error).message });
      return 0;
    }
    let pruned = 0;
    for (const key of known) {
      // DomainStatus names containers by their full id; a prefix match keeps a shorter one too.
      if (ids.some((id) => id.startsWith(key))) continue;
      this.deps.cursors.delete(key);
      pruned++;
    }
    return pruned;
  }

  async stop(): Promise<void> {
    const all = [...[...this.followers.values()].map(({ f }) => f), ...this.retiring];
    this.followers.clear();
    this.retiring.clear();
    for (const f of all) f.stop(true);
    await Promise.all(all.map((f) => f.done));
  }
}
