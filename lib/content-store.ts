// Where content lives under the persist directory, by digest. The downloader
// writes pending files; the verifier moves them, once checked, to verified/ and
// makes them read-only; volumemgr reads only verified files.
import * as path from 'node:path';

export interface ContentStorePaths {
  /** Downloads in progress (<hex>.part plus <hex>.part.json) and finished but unchecked (<hex>). */
  pending: string;
  /** Checked blobs, read-only, named <hex>. */
  verified: string;
  /** Volume directories (blank volumes, raw content copies), named by volume instance key. */
  volumes: string;
}

export function contentStore(persistDir: string): ContentStorePaths {
  const vault = path.join(persistDir, 'vault');
  return {
    pending: path.join(vault, 'downloader', 'pending'),
    verified: path.join(vault, 'verifier', 'verified'),
    volumes: path.join(vault, 'volumes'),
  };
}

/** The hex part of "sha256:<hex>", the file name used in every store directory. */
export function digestHex(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1] as string;
}
