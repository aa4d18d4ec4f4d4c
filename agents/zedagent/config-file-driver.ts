// The local config file and its checkpoint on disk: reading, noticing changes
// (fs.watch on the directory, which also sees an editor's write-then-rename,
// plus a periodic stat for filesystems where watching fails), and keeping the
// last accepted text under <persist>/checkpoint.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../lib/atomic-file';

export type FileRead = { ok: true; text: string } | { ok: false; missing: boolean; error: string };

export function readConfigFile(file: string): FileRead {
  try {
    return { ok: true, text: fs.readFileSync(file, 'utf8') };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, missing: e.code === 'ENOENT', error: `cannot read ${file}: ${e.message}` };
  }
}

export function checkpointPath(persistDir: string): string {
  return path.join(persistDir, 'checkpoint', 'device-config.json');
}

export function readCheckpoint(persistDir: string): string | undefined {
  const r = readConfigFile(checkpointPath(persistDir));
  return r.ok ? r.text : undefined;
}

export function writeCheckpoint(persistDir: string, text: string): void {
  const file = checkpointPath(persistDir);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomicSync(file, text);
}

export interface WatchTimers {
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  setInterval(fn: () => void, ms: number): NodeJS.Timeout;
}

/** Calls onChange (debounced) when the file may have changed; the caller compares contents. */
export class ConfigFileWatcher {
  private watcher: fs.FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private lastStat = '';

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    private readonly timers: WatchTimers,
    // Editors and tools write a whole file in one go or rename one over it: 25 ms of quiet (with the
    // file's stat unchanged across it) is enough, and every millisecond here delays a deployment.
    // A writer that pauses longer mid-file gets its half-file refused, then the whole one applied.
    private readonly opts = { debounceMs: 25, pollMs: 2000 },
  ) {}

  start(): void {
    this.lastStat = this.statKey();
    this.watchDir();
    this.poll = this.timers.setInterval(() => {
      const now = this.statKey();
      if (now !== this.lastStat) this.trigger();
      if (!this.watcher) this.watchDir(); // the directory may have appeared since
    }, this.opts.pollMs);
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.poll) clearInterval(this.poll);
    if (this.pending) clearTimeout(this.pending);
  }

  private watchDir(): void {
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    try {
      this.watcher = fs.watch(dir, (_event, name) => {
        if (name === null || name === base) this.trigger();
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined; // the stat poll carries on, and re-watches
      });
    } catch {
      this.watcher = undefined;
    }
  }

  private trigger(): void {
    if (this.pending) clearTimeout(this.pending);
    const seen = this.statKey();
    this.pending = this.timers.setTimeout(() => {
      this.pending = undefined;
      const now = this.statKey();
      if (now !== seen) return this.trigger(); // still being written
      this.lastStat = now;
      this.onChange();
    }, this.opts.debounceMs);
  }

  /** Inode, size and mtime: a rename over the file changes the inode even when size and mtime repeat. */
  private statKey(): string {
    try {
      const s = fs.statSync(this.file);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }
}
