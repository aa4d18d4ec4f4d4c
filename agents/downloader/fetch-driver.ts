// One download, end to end: pick the datastores in order, check free space,
// resume a partial with Range, stream into <hex>.part, abort on a stall, check
// the size, fsync, then rename to <hex>. No hashing here: the verifier hashes
// every blob anyway, and hashing on this thread cost a third of the throughput
// (bench/content.ts: 662 vs 448 MiB/s on a 2-vCPU machine).
import * as fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Datastore } from '../../pubsub/collections/config';
import type { DownloaderConfig } from '../../pubsub/collections/content';
import { HttpError, type HttpClient } from './http-driver';
import { sourceFor } from './sources';
import { formatBytes, type PendingStore } from './store-driver';

export interface FetchRequest {
  config: DownloaderConfig;
  /** In the config's order; undefined where the datastore is not (yet) known. */
  datastores: Array<Datastore | undefined>;
  stallMs: number;
  reserveBytes: number;
  signal: AbortSignal;
  onProgress(currentBytes: number, totalBytes: number | undefined): void;
}

export interface FetchResult {
  sizeBytes: number;
  datastoreId: string;
  mediaType?: string;
}

const WRITE_BATCH = 4 << 20;

/** A failure no other datastore can fix (no space): the attempt stops at once. */
export class LocalError extends Error {}

export class Fetcher {
  constructor(private readonly store: PendingStore, private readonly client: HttpClient) {}

  async fetch(req: FetchRequest): Promise<FetchResult> {
    const have = this.store.completeSize(req.config.digest);
    if (have !== undefined && (req.config.sizeBytes === undefined || have === req.config.sizeBytes)) {
      // Already complete (a config that vanished and came back): nothing to fetch.
      return { sizeBytes: have, datastoreId: req.config.datastoreIds[0] as string, mediaType: req.config.mediaType };
    }
    // Killed after the last write and before the rename: every byte is here, and a Range from
    // the end could only get a 416 (and a full download again).
    const part = this.store.partSize(req.config.digest);
    const total = req.config.sizeBytes ?? this.store.readSidecar(req.config.digest)?.totalBytes;
    if (part > 0 && part === total) return this.commitPartial(req.config, part);
    const problems: string[] = [];
    for (const [i, ds] of req.datastores.entries()) {
      if (!ds) {
        problems.push(`datastore ${req.config.datastoreIds[i]} is not configured`);
        continue;
      }
      try {
        return await this.fromDatastore(req, ds);
      } catch (err) {
        if (err instanceof LocalError || req.signal.aborted) throw err;
        problems.push((err as Error).message);
      }
    }
    throw new Error(problems.join('; '));
  }

  private async fromDatastore(req: FetchRequest, ds: Datastore): Promise<FetchResult> {
    const { config } = req;
    const src = sourceFor(config, ds);
    let offset = this.store.partSize(config.digest);
    const known = config.sizeBytes ?? this.store.readSidecar(config.digest)?.totalBytes;
    if (known !== undefined && offset > known) {
      this.store.removePartial(config.digest); // more than the whole: nothing in it to trust
      offset = 0;
    }
    if (known !== undefined) await this.checkSpace(known - offset, req.reserveBytes);
    const stall = new StallTimer(req.stallMs, req.signal);
    try {
      const headers = offset > 0 ? { ...src.headers, Range: `bytes=${offset}-` } : src.headers;
      let res: IncomingMessage;
      try {
        res = await this.client.request(ds, src.url, { headers, scope: src.scope, signal: stall.signal });
      } catch (err) {
        if (err instanceof HttpError && err.status === 416) {
          // "bytes */N": the server's size. Ours exactly (and no other size expected): the partial is whole.
          const m = /^bytes \*\/(\d+)$/.exec(String(err.headers?.['content-range'] ?? ''));
          if (m && Number(m[1]) === offset && (config.sizeBytes ?? offset) === offset) return await this.commitPartial(config, offset, ds.id);
          this.store.removePartial(config.digest); // start again next time
        }
        throw err;
      }
      offset = this.checkRange(res, offset, src.url);
      const total = totalOf(res, offset);
      if (config.sizeBytes !== undefined && total !== undefined && total !== config.sizeBytes) {
        res.resume();
        this.store.removePartial(config.digest);
        throw new Error(`size mismatch for ${config.digest} at ${src.url}: expected ${config.sizeBytes} bytes, server has ${total}`);
      }
      const mediaType = config.kind === 'oci-manifest' ? String(res.headers['content-type'] ?? '').split(';')[0] || undefined : config.mediaType;
      this.store.writeSidecar({ digest: config.digest, kind: config.kind, name: config.name, datastoreId: ds.id, url: src.url, totalBytes: total, mediaType });
      if (total !== undefined && offset === 0 && config.sizeBytes === undefined) await this.checkSpace(total, req.reserveBytes);
      const size = await this.write(req, res, offset, total, stall);
      this.store.commit(config.digest);
      return { sizeBytes: size, datastoreId: ds.id, mediaType };
    } catch (err) {
      if (stall.fired) throw new Error(`stalled: no data from ${ds.url} for ${Math.round(req.stallMs / 1000)} s`);
      throw err;
    } finally {
      stall.clear();
    }
  }

  /** The partial, already whole, becomes the complete file (synced first: it may predate a crash). */
  private async commitPartial(config: DownloaderConfig, size: number, datastoreId?: string): Promise<FetchResult> {
    const info = this.store.readSidecar(config.digest);
    const fh = await fs.promises.open(this.store.partPath(config.digest), 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.store.commit(config.digest);
    const from = datastoreId ?? (info && config.datastoreIds.includes(info.datastoreId) ? info.datastoreId : config.datastoreIds[0] as string);
    return { sizeBytes: size, datastoreId: from, mediaType: info?.mediaType ?? config.mediaType };
  }

  /** The offset the body starts at: the partial's size on a 206, 0 on a 200 (the server ignored Range). */
  private checkRange(res: IncomingMessage, offset: number, url: string): number {
    if (offset === 0) return 0;
    if (res.statusCode === 206) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
      if (m && Number(m[1]) === offset) return offset;
      res.resume();
      throw new Error(`${url}: asked for bytes from ${offset}, got Content-Range "${res.headers['content-range']}"`);
    }
    return 0;
  }

  private async checkSpace(needed: number, reserve: number): Promise<void> {
    const free = await this.store.freeBytes();
    if (free < needed + reserve) {
      throw new LocalError(`not enough space: need ${formatBytes(needed)} plus a reserve of ${formatBytes(reserve)}, ${formatBytes(free)} free`);
    }
  }

  private async write(req: FetchRequest, res: IncomingMessage, offset: number, total: number | undefined, stall: StallTimer): Promise<number> {
    const { config } = req;
    const part = this.store.partPath(config.digest);
    let current = offset;
    req.onProgress(current, total);
    const limit = config.sizeBytes ?? total;
    const fh = await fs.promises.open(part, offset > 0 ? 'a' : 'w');
    try {
      // Chunks are gathered into WRITE_BATCH-sized writev calls, one in flight while the next fills:
      // a write per 64 KiB socket chunk costs a thread-pool round trip each.
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let writing: Promise<unknown> = Promise.resolve();
      const flush = async (): Promise<void> => {
        await writing;
        const bufs = batch;
        batch = [];
        batchBytes = 0;
        writing = writeAll(fh, bufs);
      };
      const onAbort = (): void => void res.destroy(new Error('aborted'));
      stall.signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of res as AsyncIterable<Buffer>) {
          stall.kick();
          current += chunk.length;
          if (limit !== undefined && current > limit) throw new Error(`${config.digest}: server sent more than the expected ${limit} bytes`);
          req.onProgress(current, total);
          batch.push(chunk);
          batchBytes += chunk.length;
          if (batchBytes >= WRITE_BATCH) await flush();
        }
      } finally {
        stall.signal.removeEventListener('abort', onAbort);
        // What arrived before a cut is good: keep it for the resume.
        await flush().catch(() => undefined);
        await writing;
        await fh.sync();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new LocalError(`no space left writing ${config.digest}: kept ${formatBytes(fs.statSync(part).size)} to resume`);
      throw err;
    } finally {
      await fh.close();
    }
    if (total !== undefined && current !== total) throw new Error(`${config.digest}: connection closed at ${current} of ${total} bytes`);
    if (config.sizeBytes !== undefined && current !== config.sizeBytes) {
      this.store.removePartial(config.digest);
      throw new Error(`size mismatch for ${config.digest}: expected ${config.sizeBytes} bytes, got ${current}`);
    }
    return current;
  }
}

/** writev until every byte is written: a short write (the disk just filled) is followed by one that fails. */
async function writeAll(fh: fs.promises.FileHandle, bufs: Buffer[]): Promise<void> {
  let rest = bufs;
  while (rest.length) {
    let { bytesWritten } = await fh.writev(rest);
    const left: Buffer[] = [];
    for (const b of rest) {
      if (bytesWritten >= b.length) bytesWritten -= b.length;
      else {
        left.push(b.subarray(bytesWritten));
        bytesWritten = 0;
      }
    }
    rest = left;
  }
}

function totalOf(res: IncomingMessage, offset: number): number | undefined {
  const range = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
  if (range) return Number(range[1]);
  const len = res.headers['content-length'];
  return len === undefined ? undefined : offset + Number(len);
}

/** Aborts when no byte arrived for `ms`, or when the outer signal aborts. */
class StallTimer {
  private readonly ctl = new AbortController();
  private timer?: NodeJS.Timeout;
  fired = false;
  private readonly onOuter = (): void => this.ctl.abort();

  constructor(private readonly ms: number, private readonly outer: AbortSignal) {
    outer.addEventListener('abort', this.onOuter, { once: true });
    this.kick();
  }

  get signal(): AbortSignal {
    return this.ctl.signal;
  }

  kick(): void {
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => {
      this.fired = true;
      this.ctl.abort();
    }, this.ms);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.outer.removeEventListener('abort', this.onOuter);
  }
}
