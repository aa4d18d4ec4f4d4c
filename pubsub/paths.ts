// Where each owner's sockets live. Only the owner binds them; anyone may connect.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Linux's sun_path holds 107 bytes plus a NUL. */
const MAX_IPC_PATH = 107;

export function busDir(runDir: string): string {
  return path.join(runDir, 'bus');
}

export function endpointPaths(runDir: string, owner: string): { pub: string; req: string } {
  const dir = busDir(runDir);
  const paths = { pub: path.join(dir, `${owner}.pub`), req: path.join(dir, `${owner}.req`) };
  for (const p of Object.values(paths)) {
    if (Buffer.byteLength(p) > MAX_IPC_PATH) {
      throw new Error(`bus socket path ${p} is longer than ${MAX_IPC_PATH} bytes; choose a shorter run directory`);
    }
  }
  return paths;
}

export const ipc = (p: string): string => `ipc://${p}`;

/** Creates <run>/bus for its owner only: any process that can reach the sockets can read every
 *  collection and feed subscribers, so other users (and app containers) must not. */
export function ensureBusDir(runDir: string): string {
  const dir = busDir(runDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700); // also when it existed with a looser mode
  return dir;
}
