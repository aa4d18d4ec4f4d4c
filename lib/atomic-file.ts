// Crash-safe file replacement: write a temporary file, fsync it, rename it over
// the target, fsync the directory. A crash at any point leaves the old or the
// new content under the target name, never a torn file.
import * as fs from 'node:fs';
import * as path from 'node:path';

const TMP_SUFFIX = '.tmp';

/**
 * Fault injection for the crash tests: ZEDBOX_FAULT=persist-crash:<stage> kills
 * the process with SIGKILL at that stage of a write. Read once at start-up.
 */
const crashStage = /^persist-crash:([\w-]+)$/.exec(process.env.ZEDBOX_FAULT ?? '')?.[1];

function maybeCrash(stage: string): void {
  if (crashStage === stage) process.kill(process.pid, 'SIGKILL');
}

export function writeFileAtomicSync(file: string, data: string | Buffer): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}${TMP_SUFFIX}`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    maybeCrash('after-write');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  maybeCrash('after-fsync');
  fs.renameSync(tmp, file);
  maybeCrash('after-rename');
  fsyncDir(dir);
}

/** A value as pretty JSON, written atomically; the directory is made if missing (private, 0700). */
export function writeJsonAtomicSync(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomicSync(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Replaces a file by rename without fsync: readers and a crashed process never see a torn file,
 * but a power loss may leave it empty or old. For caches that can be rebuilt (the controller's
 * copy of what devices keep retained on the broker), where an fsync per message is the bottleneck.
 */
export function writeFileReplaceSync(file: string, data: string | Buffer): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}${TMP_SUFFIX}`);
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function unlinkDurableSync(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return;
  }
  fsyncDir(path.dirname(file));
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Leftover temporary files from an interrupted write; safe to delete. */
export function isTempFile(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TMP_SUFFIX);
}
