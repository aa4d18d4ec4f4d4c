// The devices' log batches in the controller's state dir: one file per batch,
// logs/<uuid>/<seq12>.json, holding the batch as the device sent it (gzip of
// NDJSON LogLines, base64) with its receive time. A batch is written once: the
// file is made complete and fsynced under a temporary name, then hard-linked to
// its final name, which fails if it exists, so two replicas storing the same seq
// (a resend) keep one copy and both may acknowledge it. Per device, the oldest
// batches are deleted once the device holds more than the retention cap.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { LogLineSchema, type LogLine } from '../api/logs';
import type { LogsBody } from '../api/messages';
import { UUID_RE } from '../api/topics';
import { fsyncDir, isTempFile } from '../lib/atomic-file';
import { logBatchKey } from '../pubsub/collections/logs';
import { listDir } from './state-dir';

export const DEFAULT_LOG_RETENTION_BYTES = 256 * 1024 * 1024;
/** A batch's lines are ~1 MB uncompressed; more than this is a zip bomb, not a batch. */
export const MAX_BATCH_DECOMPRESSED_BYTES = 16 * 1024 * 1024;
/** How long this process trusts its own count of a device's bytes (other replicas write too). */
const RESCAN_AFTER_MS = 60_000;
/** A temporary file this old is a leftover of a crash, not another replica's write in progress. */
const STALE_TEMP_MS = 60_000;

export type StoredLogBatch = Omit<LogsBody, 'deviceId'> & {
  receivedAt: string;
  /** The controller replica that stored it. */
  replica?: string;
};

export type DecodedBatch = { ok: true; lines: LogLine[] } | { ok: false; reason: 'bad-gzip' | 'too-large' | 'bad-line'; error: string };

const LINE_CHECK = TypeCompiler.Compile(LogLineSchema);
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** A batch's lines: base64, gunzip (bounded), one LogLine per non-blank line. */
export function decodeBatch(gzipB64: string, maxBytes = MAX_BATCH_DECOMPRESSED_BYTES): DecodedBatch {
  if (gzipB64.length % 4 !== 0 || !BASE64_RE.test(gzipB64)) return { ok: false, reason: 'bad-gzip', error: '/gzip is not base64' };
  let raw: Buffer;
  try {
    raw = gunzipSync(Buffer.from(gzipB64, 'base64'), { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      return { ok: false, reason: 'too-large', error: `/gzip decompresses to more than ${maxBytes} bytes` };
    }
    return { ok: false, reason: 'bad-gzip', error: `/gzip does not decompress: ${e.message}` };
  }
  const lines: LogLine[] = [];
  const texts = raw.toString('utf8').split('\n');
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i]!;
    if (!text.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, reason: 'bad-line', error: `line ${i + 1} is not JSON: ${(err as Error).message}` };
    }
    if (!LINE_CHECK.Check(value)) {
      const e = LINE_CHECK.Errors(value).First();
      return { ok: false, reason: 'bad-line', error: `line ${i + 1}: ${e ? `${e.path || '/'} ${e.message}` : 'not a log line'}` };
    }
    lines.push(value);
  }
  return { ok: true, lines };
}

interface Usage {
  /** seq → bytes of its file, as this process last knew. */
  files: Map<number, number>;
  bytes: number;
  scannedAt: number;
}

export class LogStore {
  private readonly usage = new Map<string, Usage>();
  /** Batches deleted by the retention cap (this process). */
  deleted = 0;

  constructor(private readonly stateDir: string, readonly retentionBytes = DEFAULT_LOG_RETENTION_BYTES) {}

  dirOf(uuid: string): string {
    if (!UUID_RE.test(uuid)) throw new Error(`invalid device id ${JSON.stringify(uuid)}`);
    return path.join(this.stateDir, 'logs', uuid);
  }

  fileOf(uuid: string, seq: number): string {
    return path.join(this.dirOf(uuid), `${logBatchKey(seq)}.json`);
  }

  has(uuid: string, seq: number): boolean {
    return fs.existsSync(this.fileOf(uuid, seq));
  }

  /** Stores the batch durably unless that seq is stored already (then nothing is written). */
  store(uuid: string, batch: StoredLogBatch): 'stored' | 'duplicate' {
    const dir = this.dirOf(uuid);
    const file = this.fileOf(uuid, batch.seq);
    if (fs.existsSync(file)) return 'duplicate';
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const data = Buffer.from(JSON.stringify(batch) + '\n');
    const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    let linked = true;
    try {
      fs.linkSync(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      linked = false; // another replica stored it first
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    if (!linked) return 'duplicate';
    fsyncDir(dir);
    this.account(uuid, batch.seq, data.length);
    return 'stored';
  }

  /** The device's stored seqs, in order. */
  seqs(uuid: string): number[] {
    const out: number[] = [];
    for (const name of listDir(this.dirOf(uuid))) {
      const m = /^(\d{12})\.json$/.exec(name);
      if (m) out.push(Number(m[1]));
    }
    return out.sort((a, b) => a - b);
  }

  /** One stored batch; undefined when it is not (or no longer) there. */
  read(uuid: string, seq: number): StoredLogBatch | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.fileOf(uuid, seq), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // deleted by retention meanwhile
      throw err;
    }
    return JSON.parse(text) as StoredLogBatch;
  }

  /** Bytes the device's stored batches take, as this process counts them. */
  bytesOf(uuid: string): number {
    return this.usageOf(uuid).bytes;
  }

  private account(uuid: string, seq: number, size: number): void {
    const u = this.usageOf(uuid);
    u.bytes += size - (u.files.get(seq) ?? 0);
    u.files.set(seq, size);
    if (u.bytes <= this.retentionBytes) return;
    // Over the cap: count again from the disk first if the count may miss other replicas' batches.
    const fresh = Date.now() - u.scannedAt < RESCAN_AFTER_MS ? u : this.scan(uuid);
    const order = [...fresh.files.keys()].sort((a, b) => a - b);
    let removed = 0;
    // The newest batch stays whatever its size: a cap below one batch keeps the latest.
    for (const old of order.slice(0, -1)) {
      if (fresh.bytes <= this.retentionBytes) break;
      fs.rmSync(this.fileOf(uuid, old), { force: true });
      fresh.bytes -= fresh.files.get(old)!;
      fresh.files.delete(old);
      removed++;
    }
    if (removed) {
      this.deleted += removed;
      fsyncDir(this.dirOf(uuid));
    }
  }

  private usageOf(uuid: string): Usage {
    const u = this.usage.get(uuid);
    if (u && Date.now() - u.scannedAt < RESCAN_AFTER_MS) return u;
    return this.scan(uuid);
  }

  private scan(uuid: string): Usage {
    const dir = this.dirOf(uuid);
    const u: Usage = { files: new Map(), bytes: 0, scannedAt: Date.now() };
    for (const name of listDir(dir)) {
      const file = path.join(dir, name);
      const m = /^(\d{12})\.json$/.exec(name);
      try {
        const st = fs.statSync(file);
        if (m) {
          u.files.set(Number(m[1]), st.size);
          u.bytes += st.size;
        } else if (isTempFile(name) && Date.now() - st.mtimeMs > STALE_TEMP_MS) {
          fs.rmSync(file, { force: true });
        }
      } catch {
        // deleted meanwhile by another replica
      }
    }
    this.usage.set(uuid, u);
    return u;
  }
}
