// Volume directories under <persist>/vault/volumes, the side-effecting part.
// A directory is built under a temporary name and renamed into place, so a
// directory with a volume's name is always complete; creating an existing one
// and deleting a missing one both succeed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsyncDir } from '../../lib/atomic-file';

const VOLUME_NAME = /^[^.#][^#]*#\d+#\d+$/;
const TEMP_PREFIX = '.tmp-';

/** Volume instance keys with a directory; leftovers of interrupted creations are removed. */
export function listVolumeDirs(volumesDir: string): Set<string> {
  fs.mkdirSync(volumesDir, { recursive: true });
  const out = new Set<string>();
  for (const e of fs.readdirSync(volumesDir, { withFileTypes: true })) {
    if (e.name.startsWith(TEMP_PREFIX)) fs.rmSync(path.join(volumesDir, e.name), { recursive: true, force: true });
    else if (e.isDirectory() && VOLUME_NAME.test(e.name)) out.add(e.name);
  }
  return out;
}

/** Creates <volumesDir>/<key>/, empty or holding a copy of `copyFrom` named `fileName`. */
export async function createVolumeDir(volumesDir: string, key: string, copyFrom?: string, fileName = 'content'): Promise<string> {
  const target = path.join(volumesDir, key);
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(volumesDir, { recursive: true });
  const tmp = path.join(volumesDir, `${TEMP_PREFIX}${key}`);
  await fs.promises.rm(tmp, { recursive: true, force: true });
  await fs.promises.mkdir(tmp, { mode: 0o755 });
  if (copyFrom) {
    const safeName = /^[^/]+$/.test(fileName) && fileName !== '.' && fileName !== '..' ? fileName : 'content';
    const dest = path.join(tmp, safeName);
    await fs.promises.copyFile(copyFrom, dest);
    await fs.promises.chmod(dest, 0o644); // the verified source is read-only; the volume is the app's to write
    const fh = await fs.promises.open(dest, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
  }
  fsyncDir(tmp);
  await fs.promises.rename(tmp, target);
  fsyncDir(volumesDir);
  return target;
}

export async function deleteVolumeDir(hostPath: string): Promise<void> {
  await fs.promises.rm(hostPath, { recursive: true, force: true });
  const parent = path.dirname(hostPath);
  if (fs.existsSync(parent)) fsyncDir(parent);
}

/** Free bytes for an unprivileged writer on the filesystem holding `dir`. */
export function freeBytes(dir: string): number {
  const st = fs.statfsSync(dir);
  return Number(st.bavail) * Number(st.bsize);
}
