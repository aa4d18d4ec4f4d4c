// Finding what is on the bus: every owner endpoint under <run>/bus/, whether a
// live process holds it, and what it publishes (asked over its ROUTER socket).
import * as fs from 'node:fs';
import { Dealer } from 'zeromq';
import { queryHolder } from './endpoint-lock';
import { busDir, endpointPaths, ipc } from './paths';
import { readReqId, reqIdFrame, type PublisherInfo } from './wire';

export interface OwnerReport {
  owner: string;
  /** The live holder's pid, or undefined when the sockets are left over from a dead process. */
  pid?: number;
  info?: PublisherInfo;
  error?: string;
}

export function ownersOnDisk(runDir: string): string[] {
  try {
    return fs
      .readdirSync(busDir(runDir))
      .filter((n) => n.endsWith('.req'))
      .map((n) => n.slice(0, -'.req'.length))
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function discover(runDir: string, timeoutMs = 1000): Promise<OwnerReport[]> {
  return Promise.all(ownersOnDisk(runDir).map((owner) => describeOwner(runDir, owner, timeoutMs)));
}

async function describeOwner(runDir: string, owner: string, timeoutMs: number): Promise<OwnerReport> {
  const holder = await queryHolder(runDir, owner);
  if (!holder) return { owner, error: 'no live owner (sockets left by a process that has exited)' };
  const dealer = new Dealer({ linger: 0, sendTimeout: 0, receiveTimeout: timeoutMs });
  try {
    dealer.connect(ipc(endpointPaths(runDir, owner).req));
    const id = Math.floor(Math.random() * 0xffffffff);
    await dealer.send([reqIdFrame(id), Buffer.from('L'), Buffer.from('-')]);
    for (;;) {
      const [rid, op, body] = await dealer.receive();
      if (readReqId(rid) !== id || op?.toString() !== 'L' || !body) continue;
      return { owner, pid: holder.pid, info: JSON.parse(body.toString()) as PublisherInfo };
    }
  } catch (err) {
    const timedOut = (err as NodeJS.ErrnoException).code === 'EAGAIN';
    return { owner, pid: holder.pid, error: timedOut ? `no answer within ${timeoutMs} ms` : (err as Error).message };
  } finally {
    dealer.close();
  }
}
