// What the device still has to tell the controller: the latest message per
// object (a newer state replaces an older one not yet sent, as EVE's deferred
// queues do), kept on disk until the broker acknowledges it, so nothing is lost
// to an outage or a restart. Messages acknowledged quickly never touch the disk.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isTempFile, unlinkDurableSync, writeFileAtomicSync } from '../../lib/atomic-file';

export interface OutMessage {
  topic: string;
  payload: string;
  retain: boolean;
}

interface Entry {
  key: string;
  msg: OutMessage;
  /** Bumped by every put: an acknowledgement of an older version does not remove a newer one. */
  version: number;
  onDisk: boolean;
  /** The version now in flight, if any. */
  sending?: number;
}

/** Sends one message with QoS 1; resolves on the broker's acknowledgement. */
export type Sender = (msg: OutMessage) => Promise<void>;

export interface OutboxOptions {
  /** Messages in flight at once: bounded, so a long backlog does not flood the broker. */
  maxInflight: number;
  /** How long a message may wait for its acknowledgement before it is written to disk. */
  flushAfterMs: number;
  /** Keys sent first (device info before the rest). */
  priority?: (key: string) => number;
}

export class Outbox {
  private readonly entries = new Map<string, Entry>();
  private sender: Sender | undefined;
  private inflight = 0;
  private versions = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  sent = 0;
  writeErrors = 0;
  lastWriteError: string | undefined;

  constructor(private readonly dir: string, private readonly opts: OutboxOptions = { maxInflight: 32, flushAfterMs: 200 }) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(dir)) {
      const file = path.join(dir, name);
      if (isTempFile(name)) { fs.rmSync(file, { force: true }); continue; }
      try {
        const { key, msg } = JSON.parse(fs.readFileSync(file, 'utf8')) as { key: string; msg: OutMessage };
        this.entries.set(key, { key, msg, version: ++this.versions, onDisk: true });
      } catch {
        fs.rmSync(file, { force: true }); // a torn write cannot happen (atomic), but never wedge on one
      }
    }
  }

  get pending(): number {
    return this.entries.size;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  put(key: string, msg: OutMessage): void {
    const prev = this.entries.get(key);
    this.entries.set(key, { key, msg, version: ++this.versions, onDisk: prev?.onDisk ?? false, ...(prev?.sending !== undefined ? { sending: prev.sending } : {}) });
    this.scheduleFlush();
    this.pump();
  }

  /** Starts sending through sender (the link is up). */
  attach(sender: Sender): void {
    this.sender = sender;
    this.pump();
  }

  /** The link is down: nothing more is sent; what was in flight is sent again on the next attach. */
  detach(): void {
    this.sender = undefined;
    this.inflight = 0;
    for (const e of this.entries.values()) delete e.sending;
  }

  /** Writes every unsent message to disk now (at shutdown). */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const e of this.entries.values()) this.write(e);
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, this.opts.flushAfterMs);
    this.flushTimer.unref();
  }

  private pump(): void {
    if (!this.sender) return;
    const waiting = [...this.entries.values()].filter((e) => e.sending === undefined);
    if (this.opts.priority) waiting.sort((a, b) => this.opts.priority!(a.key) - this.opts.priority!(b.key));
    for (const e of waiting) {
      if (this.inflight >= this.opts.maxInflight) return;
      this.send(e, this.sender);
    }
  }

  private send(e: Entry, sender: Sender): void {
    const version = e.version;
    e.sending = version;
    this.inflight++;
    sender(e.msg).then(
      () => {
        if (this.sender !== sender) return; // acknowledged on a link since replaced: it will be sent again
        this.inflight--;
        this.sent++;
        const cur = this.entries.get(e.key);
        if (cur && cur.version === version) {
          this.entries.delete(e.key);
          if (cur.onDisk) {
            try {
              unlinkDurableSync(this.fileOf(e.key));
            } catch {
              this.writeErrors++; // a stale file is sent once more after a restart: harmless (the controller drops older seqs)
            }
          }
        } else if (cur) {
          delete cur.sending; // replaced while in flight: the newer one goes next
        }
        this.pump();
      },
      () => {
        if (this.sender !== sender) return;
        this.inflight--;
        const cur = this.entries.get(e.key);
        if (cur) delete cur.sending;
        // A refused publish is retried on the next attach, not in a tight loop.
      },
    );
  }

  private write(e: Entry): void {
    try {
      writeFileAtomicSync(this.fileOf(e.key), JSON.stringify({ key: e.key, msg: e.msg }));
      e.onDisk = true;
    } catch (err) {
      // A full or failing disk: the message stays owed in memory (lost only if zedbox stops before
      // the link returns), and the next flush tries the disk again.
      this.writeErrors++;
      this.lastWriteError = (err as Error).message;
    }
  }

  private fileOf(key: string): string {
    return path.join(this.dir, createHash('sha256').update(key).digest('hex').slice(0, 32) + '.json');
  }
}
