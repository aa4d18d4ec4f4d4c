// The engine side of domainmgr: observe owned containers and networks, and the
// idempotent effects the planner's steps need. 404/304 from Docker mean done.
import type Docker from 'dockerode';
import type { MaybeSealedString } from '../../lib/secrets';
import { isDockerNoop, LABEL_APP, LABEL_INSTANCE, LABEL_SPEC } from '../../lib/docker';
import type { NetworkInstance } from '../../pubsub/collections/config';
import type { DomainConfig } from '../../pubsub/collections/apps';
import { createOptions, LABEL_NETWORK, networkName, ownedLabels } from './container-spec';
import type { ObservedNetwork } from './plan';
import type { ObservedContainer } from './records';
import type { DockerStats } from './status';

export class ContainerDriver {
  constructor(
    private readonly docker: Docker,
    private readonly instance: string,
    private readonly openSecret: (v: MaybeSealedString) => string,
  ) {}

  private get instanceFilter(): string[] {
    return [`${LABEL_INSTANCE}=${this.instance}`];
  }

  /** Every container of this instance (never another instance's, never an unlabelled one). */
  async listContainers(): Promise<ObservedContainer[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: this.instanceFilter } });
    const out: ObservedContainer[] = [];
    for (const item of list) {
      if (item.Labels?.[LABEL_INSTANCE] !== this.instance) continue;
      const c = await this.inspect(item.Id);
      if (c) out.push(c);
    }
    return out;
  }

  async inspect(id: string): Promise<ObservedContainer | undefined> {
    try {
      const i = await this.docker.getContainer(id).inspect();
      const labels = i.Config.Labels ?? {};
      return {
        id: i.Id,
        name: i.Name.replace(/^\//, ''),
        appId: labels[LABEL_APP],
        specHash: labels[LABEL_SPEC],
        status: i.State.Status,
        running: i.State.Running,
        exitCode: i.State.ExitCode,
        startedAt: i.State.StartedAt,
        finishedAt: i.State.FinishedAt,
      };
    } catch (err) {
      if (isDockerNoop(err)) return undefined;
      throw err;
    }
  }

  async listNetworks(): Promise<Array<ObservedNetwork & { labels: Record<string, string> }>> {
    const list = await this.docker.listNetworks({ filters: { label: this.instanceFilter } });
    return list.filter((n) => n.Labels?.[LABEL_INSTANCE] === this.instance).map((n) => ({ id: n.Id, name: n.Name, labels: n.Labels ?? {} }));
  }

  /** Creates the bridge of a network instance unless one of that name exists. */
  async ensureNetwork(ni: NetworkInstance): Promise<string> {
    const name = networkName(this.instance, ni);
    const found = await this.docker.listNetworks({ filters: { name: [name] } });
    const same = found.find((n) => n.Name === name);
    if (same) return same.Id;
    const net = await this.docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: { ...ownedLabels(this.instance), [LABEL_NETWORK]: ni.id },
      ...(ni.subnet ? { IPAM: { Driver: 'default', Config: [{ Subnet: ni.subnet }] } } : {}),
    });
    return net.id;
  }

  async removeNetwork(id: string): Promise<void> {
    try {
      await this.docker.getNetwork(id).remove();
    } catch (err) {
      if (!isDockerNoop(err)) throw err;
    }
  }

  /** Creates the container (networks must exist); connects it to the networks after the first. */
  async create(cfg: DomainConfig, networks: string[]): Promise<string> {
    const c = await this.docker.createContainer(createOptions(cfg, this.instance, networks, this.openSecret));
    for (const n of networks.slice(1)) await this.docker.getNetwork(n).connect({ Container: c.id });
    return c.id;
  }

  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (!isDockerNoop(err)) throw err;
    }
  }

  async stop(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutSeconds });
    } catch (err) {
      if (!isDockerNoop(err)) throw err;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true });
    } catch (err) {
      if (!isDockerNoop(err)) throw err;
    }
  }

  /** The last output lines (stdout and stderr, in order), of those stamped at or after `since`. */
  async lastLogLines(id: string, sinceTime: string | undefined, tail = 10): Promise<string[]> {
    const since = sinceTime ? dockerSince(sinceTime) : undefined;
    try {
      const raw = (await this.docker.getContainer(id).logs({
        stdout: true, stderr: true, tail, follow: false, ...(since ? { since } : {}),
      })) as unknown as Buffer;
      return splitLines(demuxFrames(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)))).slice(-tail);
    } catch (err) {
      if (isDockerNoop(err)) return [];
      throw err;
    }
  }

  async stats(id: string): Promise<DockerStats> {
    return (await this.docker.getContainer(id).stats({ stream: false })) as DockerStats;
  }
}

/** RFC 3339 with nanoseconds → Docker's `since` (seconds.nanoseconds), keeping the full precision. */
export function dockerSince(time: string): string | undefined {
  const m = /^(.*?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(time);
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
  if (!m || Number.isNaN(ms) || ms <= 0) return undefined;
  return `${Math.floor(ms / 1000)}.${(m[2] ?? '').padEnd(9, '0')}`;
}

/**
 * Docker multiplexes a non-TTY container's output in frames: 1 byte stream, 3 zero bytes,
 * 4 bytes big-endian length, payload. Anything that does not parse as frames is returned as is.
 */
export function demuxFrames(buf: Buffer): string {
  const parts: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const stream = buf[off] ?? 255;
    if (stream > 2 || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) return buf.toString('utf8');
    const len = buf.readUInt32BE(off + 4);
    parts.push(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  if (off !== buf.length) return buf.toString('utf8');
  return Buffer.concat(parts).toString('utf8');
}

export function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
