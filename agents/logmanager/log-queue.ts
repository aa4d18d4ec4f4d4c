// The log queue: lines go into the open batch and its collect file; a batch closes
// after timer.log.batch or when full, is compressed and written as one queue file
// per part; the queue keeps to log.queue.max.mib by dropping the oldest batches
// outside the published window, counted; the oldest W batches are published as
// LogBatch until zedagent reports the controller stored them (LogBatchAck).
// Decisions are queue-plan.ts and batcher.ts; files are queue-store.ts.
import { RateLimitedLog, type Logger } from '../../lib/log';
import type { Publication } from '../../pubsub/publication';
import { logBatchKey, type LogBatch, type LogBatchSchema, type LogManagerStatus } from '../../pubsub/collections/logs';
import { CONFIG_ITEMS } from '../../pubsub/collections/config-items';
import { OpenBatch, RatioEstimate, type BatchPart } from './batcher';
import { normTime, type Cursor } from './docker-lines';
import { droppedBefore, planQuota, planRestart, planWindow, rebuiltNextSeq, type Dropped, type Queued } from './queue-plan';
import { appRecord, droppedRecord, lineRecord, type CollectRecord, type Ledger, type QueueStore } from './queue-store';

/** Batches on the bus at once, waiting for the controller. */
export const WINDOW = 4;

export interface LogQueueOptions {
  store: QueueStore;
  publication: Publication<typeof LogBatchSchema>;
  log: Logger;
  /** A timer the agent clears when it stops. */
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  window?: number;
  /** Monotonic milliseconds, for the batch timer. */
  clock?: () => number;
}

export class LogQueue {
  /** Per container: how far its output is taken (app-logs.ts moves them). */
  readonly cursors = new Map<string, Cursor>();
  private ledger!: Ledger;
  private queue: Queued[] = [];
  private readonly published = new Set<number>();
  private readonly open = new OpenBatch();
  private readonly ratio = new RatioEstimate();
  private pending: string[] = [];
  private flushScheduled = false;
  private durableWaiters: Array<() => void> = [];
  private syncScheduled = false;
  private syncRunning = false;
  private closeTimer?: NodeJS.Timeout;
  private quotaBytes = CONFIG_ITEMS['log.queue.max.mib'].default * 1024 * 1024;
  private timerMs = CONFIG_ITEMS['timer.log.batch'].default * 1000;
  private ledgerDirty = false;
  private stopped = false;
  private problem?: string;
  private readonly window: number;
  private readonly clock: () => number;
  private readonly warn: RateLimitedLog;

  constructor(private readonly opts: LogQueueOptions) {
    this.window = opts.window ?? WINDOW;
    this.clock = opts.clock ?? (() => performance.now());
    this.warn = new RateLimitedLog(opts.log, 60_000);
  }

  /**
   * Puts the disk in order after any stop (planRestart), batches a close that did not commit,
   * and loads what the collect file holds into the open batch. The caller adds the relays'
   * spool files, then closes the batch (leftovers go out at start, as in EVE).
   */
  recover(): void {
    const { store } = this.opts;
    const listing = store.listing();
    const { ledger, problem, rebuilt } = store.readLedger(() => rebuiltNextSeq(listing.queue, Date.now()), listing.queue.length + listing.closing.length);
    if (problem) {
      this.problem = `log ledger unreadable, rebuilt from the queue (seqs go on from ${ledger.nextSeq}): ${problem}`;
      this.opts.log.error('log ledger unreadable; rebuilt from the queue', { problem, nextSeq: ledger.nextSeq });
    }
    const plan = planRestart(listing, ledger, rebuilt);
    for (const seq of plan.deleteQueue) store.deleteBatch(seq);
    for (const seq of plan.deleteClosing) store.deleteClosing(seq);
    for (const seq of plan.staleCarried) delete ledger.carried[seq];
    ledger.dropping = [];
    this.ledger = ledger;
    // After a crash in this process the publication carries the last instance's batches:
    // the window below keeps those it wants and withdraws the rest.
    for (const key of this.opts.publication.keys()) this.published.add(Number(key));
    for (const [id, c] of Object.entries(ledger.cursors)) this.cursors.set(id, c);
    const gone = new Set(plan.deleteQueue);
    this.queue = listing.queue.filter((s) => !gone.has(s)).flatMap((seq) => {
      try {
        const h = store.readHeader(seq);
        return [{ seq, bytes: listing.bytes.get(seq) ?? 0, lines: h.lines, firstAt: h.firstAt, own: h.droppedBefore }];
      } catch (err) {
        // Written atomically, so only a damaged disk gets here; kept aside for a person, not sent.
        const aside = store.setAside(seq);
        this.problem = `queued log batch ${seq} unreadable (${(err as Error).message}); moved to ${aside}`;
        this.opts.log.error('queued log batch unreadable; set aside', { seq, file: aside, error: (err as Error).message });
        return [];
      }
    });
    for (const seq of plan.rebatch) {
      const batch = new OpenBatch();
      this.fill(store.readClosing(seq), batch);
      if (!batch.empty) {
        this.ledger.cursors = Object.fromEntries(this.cursors);
        // Its own seq, unless a rebuilt ledger's seqs went past it.
        const at = Math.max(this.ledger.nextSeq, seq);
        this.commit(at, batch.close());
      }
      store.deleteClosing(seq);
    }
    this.fill(store.openCollect(), this.open);
    this.store();
    this.refreshWindow();
  }

  /** Applies log.queue.max.mib and timer.log.batch. */
  configure(quotaMiB: number, timerSeconds: number): void {
    const quota = quotaMiB * 1024 * 1024;
    const timer = timerSeconds * 1000;
    if (timer !== this.timerMs) {
      this.timerMs = timer;
      if (this.closeTimer) this.armTimer();
    }
    if (quota !== this.quotaBytes) {
      this.quotaBytes = quota;
      this.applyQuota();
      this.store();
      this.refreshWindow();
    }
  }

  addLine(json: string, time: string): void {
    this.open.add(json, time, this.clock());
    this.write(lineRecord(json));
    this.added();
  }

  addAppLine(containerId: string, json: string, time: string): void {
    this.open.add(json, time, this.clock());
    this.write(appRecord(containerId, json));
    this.added();
  }

  /** Lines lost before the next line (a relay's buffer): counted on the batch they precede. */
  addDropped(d: Dropped): void {
    this.open.addDropped(d, this.clock());
    this.write(droppedRecord(d));
    this.ledger.totals.droppedLines += d.lines;
    this.ledgerDirty = true;
    this.added();
  }

  addFiltered(lines: number): void {
    this.ledger.totals.filteredLines += lines;
    this.ledgerDirty = true;
  }

  /** Writes what was added to the collect file. */
  flush(): void {
    if (!this.pending.length || this.stopped) return;
    const text = this.pending.join('');
    this.pending = [];
    this.opts.store.append(text);
  }

  /**
   * `done` runs once every line added so far is on disk: the collect file synced (fdatasync),
   * as a relay's ack promises. One sync at a time serves every caller since the last, so
   * relays' acks are grouped rather than costing a sync per chunk.
   */
  whenDurable(done: () => void): void {
    this.flush();
    this.durableWaiters.push(done);
    this.scheduleSync();
  }

  /** The same, now (synchronous). */
  syncNow(): void {
    this.flush();
    if (!this.stopped) this.opts.store.syncCollectNow();
  }

  /** Closes the open batch now: compressed, queued, the oldest over the quota dropped, the window published. */
  closeBatch(): void {
    clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    if (this.open.empty || this.stopped) return;
    this.flush();
    const seq = this.ledger.nextSeq;
    this.opts.store.rotateCollect(seq);
    // Every line up to here is in the closing file or was filtered: the cursors as of now go with it.
    this.ledger.cursors = Object.fromEntries(this.cursors);
    this.commit(seq, this.open.close());
    this.opts.store.deleteClosing(seq);
    this.refreshWindow();
  }

  /** The controller stored batch `seq`: its file goes, and the window moves on. */
  ack(seq: number, storedAt: string): void {
    const i = this.queue.findIndex((b) => b.seq === seq);
    if (i < 0) return; // done already (an ack seen again after a restart)
    const b = this.queue[i] as Queued;
    this.opts.store.deleteBatch(seq);
    this.queue.splice(i, 1);
    this.unpublish(seq);
    delete this.ledger.carried[seq];
    const t = this.ledger.totals;
    t.sentBatches++;
    t.sentLines += b.lines;
    this.ledger.lastAckAt = storedAt;
    this.ledgerDirty = true;
    this.refreshWindow();
  }

  status(): LogManagerStatus {
    const t = this.ledger.totals;
    const s: LogManagerStatus = {
      queuedBatches: this.queue.length,
      queuedBytes: this.queue.reduce((n, b) => n + b.bytes, 0),
      quotaBytes: this.quotaBytes,
      sentBatches: t.sentBatches,
      sentLines: t.sentLines,
      droppedLines: t.droppedLines,
      filteredLines: t.filteredLines,
    };
    if (this.queue[0]) s.oldestQueuedAt = this.queue[0].firstAt;
    if (this.ledger.lastAckAt) s.lastAckAt = this.ledger.lastAckAt;
    if (this.problem) s.error = this.problem;
    return s;
  }

  /** Writes the ledger if counters moved since (called about once a second). */
  sync(): void {
    if (this.ledgerDirty) this.store();
  }

  /** The open batch stays in its collect file, batched at the next start. */
  stop(): void {
    clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    this.syncNow();
    this.store();
    this.stopped = true;
    this.opts.store.closeCollect();
  }

  // ---- inside

  private added(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
    if (this.open.full(this.ratio.rawCap())) this.closeBatch();
    else if (!this.closeTimer) this.armTimer();
  }

  private armTimer(): void {
    clearTimeout(this.closeTimer);
    const age = this.open.openedAt === undefined ? 0 : this.clock() - this.open.openedAt;
    this.closeTimer = this.opts.setTimeout(() => {
      this.closeTimer = undefined;
      this.closeBatch();
    }, Math.max(0, this.timerMs - age));
  }

  private scheduleSync(): void {
    if (this.syncRunning || this.syncScheduled || !this.durableWaiters.length) return;
    this.syncScheduled = true;
    // After this turn's other chunks: they share the sync.
    setImmediate(() => {
      this.syncScheduled = false;
      const waiters = this.durableWaiters;
      this.durableWaiters = [];
      this.flush();
      this.syncRunning = true;
      const done = (err: NodeJS.ErrnoException | null): void => {
        this.syncRunning = false;
        // The lines are still in the open batch, which goes out with its close: the ack stands.
        if (err) this.warn.warn('sync', 'cannot sync logmanager\'s collect file', { error: err.message });
        for (const w of waiters) w();
        this.scheduleSync();
      };
      if (this.stopped) done(null);
      else this.opts.store.syncCollect(done);
    });
  }

  private write(record: string): void {
    this.pending.push(record);
  }

  /** Lines of a collect file into a batch; app lines move their container's cursor. */
  private fill(records: CollectRecord[], batch: OpenBatch): void {
    const now = this.clock();
    for (const r of records) {
      if (r.kind === 'dropped') { batch.addDropped(r.dropped, now); continue; }
      if (r.kind === 'bad') {
        const msg = `unreadable record in logmanager's collect file: ${r.text.slice(0, 4096)}`;
        batch.add(JSON.stringify({ time: new Date().toISOString(), source: 'logmanager', level: 'error', msg }), new Date().toISOString(), now);
        continue;
      }
      const time = timeOf(r.json);
      batch.add(r.json, time, now);
      if (r.kind === 'app') this.advance(r.containerId, time);
    }
  }

  private advance(containerId: string, time: string): void {
    const t = normTime(time);
    if (!t) return;
    const cur = this.cursors.get(containerId);
    if (!cur || t > cur.t) this.cursors.set(containerId, { t, n: 1 });
    else if (t === cur.t) this.cursors.set(containerId, { t, n: cur.n + 1 });
  }

  /** Writes the parts as seqs from `seq` on; the ledger write with the new nextSeq commits them. */
  private commit(seq: number, parts: BatchPart[]): void {
    parts.forEach((p, i) => {
      const header = { seq: seq + i, firstAt: p.firstAt, lastAt: p.lastAt, lines: p.lines, rawBytes: p.rawBytes, ...(p.droppedBefore ? { droppedBefore: p.droppedBefore } : {}) };
      const bytes = this.opts.store.writeBatch(header, p.gzip);
      this.queue.push({ seq: seq + i, bytes, lines: p.lines, firstAt: p.firstAt, own: p.droppedBefore });
      this.ratio.observe(p.rawBytes, p.gzip.length);
    });
    this.ledger.nextSeq = seq + parts.length;
    this.applyQuota();
    this.store();
  }

  /** Plans the drops over the quota into the ledger; the files go once it is written (deleteDropping). */
  private applyQuota(): void {
    const plan = planQuota(this.queue, this.ledger.carried, this.quotaBytes, this.window);
    if (!plan.drop.length) return;
    this.ledger.carried = plan.carried;
    this.ledger.dropping = plan.drop;
    this.ledger.totals.droppedLines += plan.droppedLines;
    this.warn.warn('quota', 'log queue over its quota: dropped the oldest batches not yet sent', {
      batches: plan.droppedBatches, lines: plan.droppedLines, quotaBytes: this.quotaBytes,
    });
  }

  private deleteDropping(): void {
    if (!this.ledger.dropping.length) return;
    const gone = new Set(this.ledger.dropping);
    for (const seq of gone) this.opts.store.deleteBatch(seq);
    this.queue = this.queue.filter((b) => !gone.has(b.seq));
    this.ledger.dropping = [];
    this.ledgerDirty = true;
  }

  private store(): void {
    this.opts.store.writeLedger(this.ledger);
    this.ledgerDirty = false;
    this.deleteDropping();
  }

  private refreshWindow(): void {
    const plan = planWindow(this.queue, this.published, this.window);
    for (const seq of plan.unpublish) this.unpublish(seq);
    for (const seq of plan.publish.sort((a, b) => a - b)) {
      const b = this.queue.find((q) => q.seq === seq) as Queued;
      const { header, gzip } = this.opts.store.readBatch(seq);
      const value: LogBatch = {
        seq, firstAt: header.firstAt, lastAt: header.lastAt, lines: header.lines, rawBytes: header.rawBytes, gzip: gzip.toString('base64'),
      };
      const db = droppedBefore(b, this.ledger.carried);
      if (db) value.droppedBefore = db;
      this.opts.publication.publish(logBatchKey(seq), value);
      this.published.add(seq);
    }
  }

  private unpublish(seq: number): void {
    if (!this.published.delete(seq)) return;
    const key = logBatchKey(seq);
    if (this.opts.publication.get(key) !== undefined) this.opts.publication.unpublish(key);
  }
}

function timeOf(json: string): string {
  try {
    const t = (JSON.parse(json) as { time?: unknown }).time;
    return typeof t === 'string' ? t : '';
  } catch {
    return '';
  }
}
