// The pending store on disk: <hex>.part (bytes so far), <hex>.part.json (what is
// needed to resume it, written atomically) and <hex> (complete, unchecked).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsyncDir, isTempFile, unlinkDurableSync, writeFileAtomicSync } from '../../lib/atomic-file';
import { digestHex } from '../../lib/content-store';

export interface PartInfo {
  digest: string;
  kind: string;
  name: string;
  datastoreId: string;
  url: string;
  totalBytes?: number;
  mediaType?: string;
}

export interface ScanResult {
  /** Complete pending files: digest → size. */
  complete: Map<string, number>;
  /** Files removed as junk (a .part without its sidecar, leftover temporaries). */
  removed: string[];
}

const HEX = /^[0-9a-f]{64}$/;

export class PendingStore {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  completePath(digest: string): string {
    return path.join(this.dir, digestHex(digest));
  }

  partPath(digest: string): string {
    return this.completePath(digest) + '.part';
  }

  private sidecarPath(digest: string): string {
    return this.partPath(digest) + '.json';
  }

  writeSidecar(info: PartInfo): void {
    writeFileAtomicSync(this.sidecarPath(info.digest), JSON.stringify(info));
  }

  readSidecar(digest: string): PartInfo | undefined {
    try {
      const info = JSON.parse(fs.readFileSync(this.sidecarPath(digest), 'utf8')) as PartInfo;
      return info.digest === digest ? info : undefined;
    } catch {
      return undefined;
    }
  }

  /** Bytes of the partial download that can be resumed (0 without a sidecar). */
  partSize(digest: string): number {
    if (!this.readSidecar(digest)) return 0;
    try {
      return fs.statSync(this.partPath(digest)).size;
    } catch {
      return 0;
    }
  }

  completeSize(digest: string): number | undefined {
    try {
      return fs.statSync(this.completePath(digest)).size;
    } catch {
      return undefined;
    }
  }

  /** The partial becomes the complete file; the sidecar goes. */
  commit(digest: string): void {
    fs.renameSync(this.partPath(digest), this.completePath(digest));
    fs.rmSync(this.sidecarPath(digest), { force: true });
    fsyncDir(this.dir);
  }

  /** Removes the partial, its sidecar and the complete file (idempotent). */
  removeAll(digest: string): void {
    this.removePartial(digest);
    unlinkDurableSync(this.completePath(digest));
  }

  removePartial(digest: string): void {
    unlinkDurableSync(this.partPath(digest));
    unlinkDurableSync(this.sidecarPath(digest));
  }

  /** Bytes free for us in the store's filesystem. */
  async freeBytes(): Promise<number> {
    const st = await fs.promises.statfs(this.dir);
    return st.bavail * st.bsize;
  }

  /** Start-up: finds complete files and removes what cannot be resumed. */
  scan(): ScanResult {
    const complete = new Map<string, number>();
    const removed: string[] = [];
    const names = new Set(fs.readdirSync(this.dir));
    for (const name of names) {
      const file = path.join(this.dir, name);
      const hex = name.split('.')[0] as string;
      const junk =
        isTempFile(name) ||
        !HEX.test(hex) ||
        (name.endsWith('.part') && !names.has(name + '.json')) ||
        (name.endsWith('.part.json') && !names.has(name.slice(0, -'.json'.length)));
      if (junk) {
        fs.rmSync(file, { force: true, recursive: true });
        removed.push(name);
      } else if (name === hex) {
        complete.set(`sha256:${hex}`, fs.statSync(file).size);
      }
    }
    if (removed.length) fsyncDir(this.dir);
    return { complete, removed };
  }
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
