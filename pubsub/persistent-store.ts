// One file per key under <persist>/status/<owner>/<Type>/, written atomically.
// Files hold {key, value} so any key maps to a safe file name.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isTempFile, unlinkDurableSync, writeFileAtomicSync } from '../lib/atomic-file';

const SUFFIX = '.json';

export interface LoadResult {
  entries: Map<string, unknown>;
  /** Files that could not be read back, moved aside as <name>.corrupt. */
  corrupt: Array<{ file: string; error: string }>;
}

export class PersistentStore {
  constructor(readonly dir: string) {}

  static dirFor(persistRoot: string, owner: string, type: string): string {
    return path.join(persistRoot, 'status', owner, type);
  }

  fileFor(key: string): string {
    const encoded = encodeURIComponent(key);
    const name = encoded.length <= 200 ? encoded : 'sha256-' + createHash('sha256').update(key).digest('hex');
    return path.join(this.dir, name + SUFFIX);
  }

  /** Reads every value. Read-only callers (subscribers) leave stray files alone. */
  load(opts: { readOnly?: boolean } = {}): LoadResult {
    const result: LoadResult = { entries: new Map(), corrupt: [] };
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return result;
      throw err;
    }
    for (const name of names) {
      const file = path.join(this.dir, name);
      if (isTempFile(name)) {
        // An interrupted write; the target still holds the old value.
        if (!opts.readOnly) fs.rmSync(file, { force: true });
        continue;
      }
      if (!name.endsWith(SUFFIX)) continue;
      try {
        const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { key?: unknown; value?: unknown };
        if (typeof parsed.key !== 'string' || !('value' in parsed)) throw new Error('missing key or value');
        result.entries.set(parsed.key, parsed.value);
      } catch (err) {
        result.corrupt.push({ file, error: (err as Error).message });
        if (!opts.readOnly) fs.renameSync(file, file + '.corrupt');
      }
    }
    return result;
  }

  write(key: string, json: string): void {
    fs.mkdirSync(this.dir, { recursive: true });
    writeFileAtomicSync(this.fileFor(key), `{"key":${JSON.stringify(key)},"value":${json}}\n`);
  }

  remove(key: string): void {
    unlinkDurableSync(this.fileFor(key));
  }
}
