// Exclusive ownership of an agent's bus endpoint across processes.
//
// libzmq lets a second process bind the same ipc:// path and silently steals it,
// so before binding, the owner takes a Linux abstract-namespace unix socket named
// after the run directory and the agent. The kernel makes that bind atomic and
// releases it when the process dies (even on SIGKILL), so no stale lock can
// outlive its owner. A refused process asks the holder who it is for the error.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { EndpointBusyError } from './errors';

export interface LockHolder {
  pid: number;
  agent: string;
  since: string;
}

export function lockName(runDir: string, agent: string): string {
  // Every spelling of one directory (symlink, trailing slash, relative) must name one lock.
  let dir = path.resolve(runDir);
  try {
    dir = fs.realpathSync(dir);
  } catch { /* not created yet: nothing can be bound there either */ }
  const scope = createHash('sha256').update(dir).digest('hex').slice(0, 16);
  return `\0zedbox-bus/${scope}/${agent}`;
}

export class EndpointLock {
  private constructor(private readonly server: net.Server) {}

  static async acquire(runDir: string, agent: string, endpoint: string): Promise<EndpointLock> {
    const name = lockName(runDir, agent);
    const holder: LockHolder = { pid: process.pid, agent, since: new Date().toISOString() };
    const server = net.createServer((conn) => conn.end(JSON.stringify(holder)));
    server.unref();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(name, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      const other = await queryHolder(runDir, agent);
      throw new EndpointBusyError(agent, endpoint, other?.pid, other ? `since ${other.since}` : 'it did not say who it is');
    }
    return new EndpointLock(server);
  }

  release(): void {
    this.server.close();
  }
}

/** Who holds an agent's endpoint, or undefined if nobody does (or it does not answer). */
export function queryHolder(runDir: string, agent: string, timeoutMs = 500): Promise<LockHolder | undefined> {
  return new Promise((resolve) => {
    const conn = net.connect(lockName(runDir, agent));
    let data = '';
    const done = (v: LockHolder | undefined): void => {
      clearTimeout(timer);
      conn.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    conn.on('data', (chunk) => {
      data += chunk.toString();
      if (data.length > 4096) done(undefined);
    });
    conn.on('end', () => {
      try {
        const parsed = JSON.parse(data) as LockHolder;
        done(typeof parsed.pid === 'number' ? parsed : undefined);
      } catch {
        done(undefined);
      }
    });
    conn.on('error', () => done(undefined));
  });
}
