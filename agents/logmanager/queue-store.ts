// logmanager's files under <persist>/logmanager/: the open collect file (lines as
// they arrive, so a kill loses at most what was not yet written), one file per
// closed batch in queue/ (a JSON header line, then the gzip bytes; written
// atomically), the ledger (next seq, carried drop counts, app cursors, totals;
// written atomically), and the relays' spool files. Thin: decisions are elsewhere.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { fsyncDir, isTempFile, writeFileAtomicSync, writeJsonAtomicSync } from '../../lib/atomic-file';
import { logBatchKey } from '../../pubsub/collections/logs';
import type { Cursor } from './docker-lines';
import type { DiskListing, Dropped } from './queue-plan';

export interface BatchHeader {
  seq: number;
  firstAt: string;
  lastAt: string;
  lines: number;
  rawBytes: number;
  /** Lines lost before this batch's own lines (agents' relays). Quota drops are in the ledger. */
  droppedBefore?: Dropped;
}

export interface Totals { sentBatches: number; sentLines: number; droppedLines: number; filteredLines: number }

export interface Ledger {
  /** The seq the next batch gets; a close commits when this is written. */
  nextSeq: number;
  /** Drop counts carried onto kept batches by the quota, by seq. */
  carried: Record<number, Dropped>;
  /** Seqs being dropped: their files are deleted after this is written (and again at start). */
  dropping: number[];
  /** Per container: how far its output is in the queue. */
  cursors: Record<string, Cursor>;
  totals: Totals;
  lastAckAt?: string;
}

const Count = Type.Integer({ minimum: 0 });
const DroppedSchema = Type.Object({ lines: Count, batches: Count, reason: Type.String() });
/** What a ledger read back must look like (fields a ledger may lack take their defaults). */
const LedgerFileSchema = Type.Object({
  nextSeq: Type.Integer({ minimum: 1 }),
  carried: Type.Optional(Type.Record(Type.Integer(), DroppedSchema, { additionalProperties: false })),
  dropping: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }))),
  cursors: Type.Optional(Type.Record(Type.String(), Type.Object({ t: Type.String(), n: Type.Integer({ minimum: 1 }) }))),
  totals: Type.Optional(Type.Object({
    sentBatches: Type.Optional(Count), sentLines: Type.Optional(Count), droppedLines: Type.Optional(Count), filteredLines: Type.Optional(Count),
  })),
  lastAckAt: Type.Optional(Type.String()),
});

/** Why a ledger read back cannot be used, naming the field; undefined when it can. */
export function ledgerProblem(value: unknown): string | undefined {
  if (Value.Check(LedgerFileSchema, value)) return undefined;
  const e = Value.Errors(LedgerFileSchema, value).First();
  return e ? `field ${e.path || '/'}: ${e.message}` : 'not a ledger';
}

export function emptyLedger(): Ledger {
  return { nextSeq: 1, carried: {}, dropping: [], cursors: {}, totals: { sentBatches: 0, sentLines: 0, droppedLines: 0, filteredLines: 0 } };
}

/** One record of a collect file. */
export type CollectRecord =
  | { kind: 'line'; json: string }
  | { kind: 'app'; containerId: string; json: string }
  | { kind: 'dropped'; dropped: Dropped }
  | { kind: 'bad'; text: string };

export function lineRecord(json: string): string { return `L ${json}\n`; }
export function appRecord(containerId: string, json: string): string { return `A ${containerId} ${json}\n`; }
export function droppedRecord(d: Dropped): string { return `D ${JSON.stringify(d)}\n`; }

export function parseRecord(text: string): CollectRecord {
  if (text.startsWith('L ')) return { kind: 'line', json: text.slice(2) };
  if (text.startsWith('A ')) {
    const sp = text.indexOf(' ', 2);
    if (sp > 2) return { kind: 'app', containerId: text.slice(2, sp), json: text.slice(sp + 1) };
  }
  if (text.startsWith('D ')) {
    try {
      const d = JSON.parse(text.slice(2)) as Dropped;
      if (Number.isSafeInteger(d.lines) && Number.isSafeInteger(d.batches) && typeof d.reason === 'string') return { kind: 'dropped', dropped: d };
    } catch { /* bad, below */ }
  }
  return { kind: 'bad', text };
}

const QUEUE_FILE = /^(\d{12})\.batch$/;
const CLOSING_FILE = /^collect\.(\d{12})\.ndjson$/;

export class QueueStore {
  readonly queueDir: string;
  readonly spoolDir: string;
  readonly collectPath: string;
  private readonly ledgerPath: string;
  private fd?: number;
  /** Syncs in flight per fd, and fds to close once theirs are done. */
  private readonly syncing = new Map<number, number>();
  private readonly closeAfterSync = new Set<number>();
  private readonly datasync: typeof fs.fdatasync;

  /** datasync: fs.fdatasync unless a test watches it. */
  constructor(readonly dir: string, opts: { datasync?: typeof fs.fdatasync } = {}) {
    this.datasync = opts.datasync ?? fs.fdatasync;
    this.queueDir = path.join(dir, 'queue');
    this.spoolDir = path.join(dir, 'spool');
    this.collectPath = path.join(dir, 'collect.ndjson');
    this.ledgerPath = path.join(dir, 'ledger.json');
    for (const d of [dir, this.queueDir, this.spoolDir]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  listing(): DiskListing & { bytes: Map<number, number> } {
    const queue: number[] = [];
    const bytes = new Map<number, number>();
    for (const name of fs.readdirSync(this.queueDir)) {
      if (isTempFile(name)) { fs.rmSync(path.join(this.queueDir, name), { force: true }); continue; }
      const m = QUEUE_FILE.exec(name);
      if (!m) continue;
      const seq = Number(m[1]);
      queue.push(seq);
      bytes.set(seq, fs.statSync(path.join(this.queueDir, name)).size);
    }
    const closing = fs.readdirSync(this.dir).flatMap((n) => { const m = CLOSING_FILE.exec(n); return m ? [Number(m[1])] : []; });
    return { queue: queue.sort((a, b) => a - b), closing, bytes };
  }

  /**
   * The ledger. A missing one is a first start, unless batch files are on disk (`files`). One
   * that cannot be used (unreadable, not JSON, a field of the wrong type) is moved aside; then,
   * as when it is missing beside batch files, the ledger is `rebuilt`: nextSeq from `rebuildFrom`,
   * the rest empty.
   */
  readLedger(rebuildFrom: () => number, files = 0): { ledger: Ledger; problem?: string; rebuilt: boolean } {
    let text: string;
    try {
      text = fs.readFileSync(this.ledgerPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      if (!files) return { ledger: emptyLedger(), rebuilt: false };
      return { ledger: { ...emptyLedger(), nextSeq: rebuildFrom() }, problem: `${this.ledgerPath} is missing while ${files} batch files are on disk`, rebuilt: true };
    }
    let problem: string;
    try {
      const l: unknown = JSON.parse(text);
      const bad = ledgerProblem(l);
      if (!bad) {
        const ok = l as Partial<Ledger> & { nextSeq: number };
        return { ledger: { ...emptyLedger(), ...ok, totals: { ...emptyLedger().totals, ...ok.totals } }, rebuilt: false };
      }
      problem = bad;
    } catch (err) {
      problem = (err as Error).message;
    }
    const aside = `${this.ledgerPath}.corrupt-${Date.now()}`;
    fs.renameSync(this.ledgerPath, aside);
    return { ledger: { ...emptyLedger(), nextSeq: rebuildFrom() }, problem: `${this.ledgerPath}: ${problem}; moved to ${aside}`, rebuilt: true };
  }

  writeLedger(l: Ledger): void {
    writeJsonAtomicSync(this.ledgerPath, l);
  }

  private batchPath(seq: number): string {
    return path.join(this.queueDir, `${logBatchKey(seq)}.batch`);
  }

  /** Writes a closed batch atomically; returns its size on disk. */
  writeBatch(header: BatchHeader, gzip: Buffer): number {
    const data = Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), gzip]);
    writeFileAtomicSync(this.batchPath(header.seq), data);
    return data.length;
  }

  readBatch(seq: number): { header: BatchHeader; gzip: Buffer } {
    const data = fs.readFileSync(this.batchPath(seq));
    const nl = data.indexOf(0x0a);
    if (nl < 0) throw new Error(`${this.batchPath(seq)}: no header line`);
    return { header: JSON.parse(data.subarray(0, nl).toString('utf8')) as BatchHeader, gzip: data.subarray(nl + 1) };
  }

  /** The header alone (a start reads every queued batch's). */
  readHeader(seq: number): BatchHeader {
    const fd = fs.openSync(this.batchPath(seq), 'r');
    try {
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      const nl = buf.subarray(0, n).indexOf(0x0a);
      if (nl >= 0) return JSON.parse(buf.subarray(0, nl).toString('utf8')) as BatchHeader;
    } finally {
      fs.closeSync(fd);
    }
    return this.readBatch(seq).header;
  }

  /** Not made durable: a batch that comes back after a power loss is sent again (the controller
   *  stores by seq) or, if it was being dropped, is dropped again from the ledger's list. */
  deleteBatch(seq: number): void {
    fs.rmSync(this.batchPath(seq), { force: true });
  }

  /** Moves an unreadable queue file out of the queue; returns where it went. */
  setAside(seq: number): string {
    const to = `${this.batchPath(seq)}.unreadable`;
    fs.renameSync(this.batchPath(seq), to);
    return to;
  }

  // ---- the collect file

  /** Opens the collect file for appending; returns what a previous run left in it. A torn last
   *  record (a kill in the middle of a write) is cut off: its source still has it (relay: not
   *  acknowledged; app: the cursor is before it). */
  openCollect(): CollectRecord[] {
    let text = '';
    try {
      text = fs.readFileSync(this.collectPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length) fs.truncateSync(this.collectPath, Buffer.byteLength(text.slice(0, end)));
    this.fd = fs.openSync(this.collectPath, 'a', 0o600);
    return splitRecords(text.slice(0, end));
  }

  append(text: string): void {
    if (this.fd === undefined) throw new Error('logmanager: the collect file is not open');
    fs.writeSync(this.fd, text);
  }

  /** Makes what was appended so far durable (fdatasync, off the event loop); then `done`. A file
   *  rotated meanwhile is synced all the same (its fd is closed after). */
  syncCollect(done: (err: NodeJS.ErrnoException | null) => void): void {
    const fd = this.fd;
    if (fd === undefined) {
      done(null);
      return;
    }
    this.syncing.set(fd, (this.syncing.get(fd) ?? 0) + 1);
    this.datasync(fd, (err) => {
      const left = (this.syncing.get(fd) ?? 1) - 1;
      if (left > 0) this.syncing.set(fd, left);
      else {
        this.syncing.delete(fd);
        if (this.closeAfterSync.delete(fd)) fs.closeSync(fd);
      }
      done(err);
    });
  }

  /** The same, now (before a spool file that held the lines is removed). */
  syncCollectNow(): void {
    if (this.fd !== undefined) fs.fdatasyncSync(this.fd);
  }

  private closeFd(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    if (this.syncing.has(fd)) this.closeAfterSync.add(fd);
    else fs.closeSync(fd);
  }

  /** The open collect file becomes collect.<seq>.ndjson (being closed) and a new one is opened. */
  rotateCollect(seq: number): void {
    this.closeFd();
    fs.renameSync(this.collectPath, this.closingPath(seq));
    fsyncDir(this.dir);
    this.fd = fs.openSync(this.collectPath, 'a', 0o600);
  }

  private closingPath(seq: number): string {
    return path.join(this.dir, `collect.${logBatchKey(seq)}.ndjson`);
  }

  readClosing(seq: number): CollectRecord[] {
    const text = fs.readFileSync(this.closingPath(seq), 'utf8');
    return splitRecords(text.slice(0, text.lastIndexOf('\n') + 1));
  }

  /** Not made durable: a closing file that comes back is below the ledger's nextSeq, so it is deleted at start. */
  deleteClosing(seq: number): void {
    fs.rmSync(this.closingPath(seq), { force: true });
  }

  closeCollect(): void {
    this.closeFd();
  }

  // ---- spool files the relays leave at exit

  spoolFiles(): string[] {
    return fs.readdirSync(this.spoolDir).filter((n) => n.endsWith('.ndjson') && !isTempFile(n)).sort().map((n) => path.join(this.spoolDir, n));
  }
}

function splitRecords(text: string): CollectRecord[] {
  if (!text) return [];
  return text.slice(0, -1).split('\n').map(parseRecord);
}
