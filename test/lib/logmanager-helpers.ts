// What logmanager's integration tests share: logmanager on a real bus with the
// test standing in for zedagent (config items, acks) and domainmgr (DomainStatus),
// a "controller" that takes LogBatch values, unzips them and acknowledges them
// (or not, while it is "away"), and app containers on the real engine.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import Docker from 'dockerode';
import type { LogLine } from '../../api/logs';
import { logmanager } from '../../agents/logmanager/main';
import type { Dirs } from '../../lib/dirs';
import { LABEL_INSTANCE, LABEL_OWNED } from '../../lib/docker';
import { DomainStatusCollection, type DomainStatus } from '../../pubsub/collections/apps';
import { ConfigItemValueMapCollection } from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import { LogBatchAckCollection, LogBatchCollection, logBatchKey, type LogBatch } from '../../pubsub/collections/logs';
import type { Bus } from '../../pubsub/bus';
import type { Publication } from '../../pubsub/publication';
import type { Subscription } from '../../pubsub/subscription';
import { startAgents, type Harness } from './agent-harness';
import { ensureServices } from './services';

export interface Received { batch: LogBatch; lines: LogLine[] }

/** Stands in for zedagent and the controller: takes every LogBatch, and acknowledges it while `acking`. */
export class StandIn {
  readonly received = new Map<number, Received>();
  acking = true;
  private readonly sub: Subscription<typeof LogBatchCollection.schema>;

  constructor(private readonly acks: Publication<typeof LogBatchAckCollection.schema>, bus: Bus) {
    const take = (_k: string, b: Readonly<LogBatch>): void => {
      if (!this.received.has(b.seq)) {
        const text = gunzipSync(Buffer.from(b.gzip, 'base64')).toString('utf8');
        const lines = text ? text.trimEnd().split('\n').map((l) => JSON.parse(l) as LogLine) : [];
        this.received.set(b.seq, { batch: b as LogBatch, lines });
      }
      if (this.acking) this.ack(b.seq);
    };
    this.sub = bus.subscribe(LogBatchCollection, {
      agent: 'test', create: take, modify: take,
      // As zedagent does: the batch is gone, so its ack is withdrawn.
      delete: (key) => { if (this.acks.get(key)) this.acks.unpublish(key); },
    });
  }

  ack(seq: number): void {
    const key = logBatchKey(seq);
    if (!this.acks.get(key)) this.acks.publish(key, { seq, storedAt: new Date().toISOString() });
  }

  /** Acknowledges what is on the bus now, and everything after. */
  resume(): void {
    this.acking = true;
    for (const b of this.sub.getAll().values()) this.ack(b.seq);
  }

  /** Every line received, in seq order. */
  lines(): LogLine[] {
    return [...this.received.keys()].sort((a, b) => a - b).flatMap((s) => this.received.get(s)?.lines ?? []);
  }

  close(): void {
    this.sub.close();
  }
}

export interface LogmanagerRig {
  h: Harness;
  items: Publication<typeof ConfigItemValueMapCollection.schema>;
  domains: Publication<typeof DomainStatusCollection.schema>;
  standIn: StandIn;
  setItems(items: Record<string, string>): void;
  stop(): Promise<void>;
}

/** logmanager alone on a bus, with the test as zedagent (config items, acks) and domainmgr. */
export async function startLogmanager(opts: { dirs?: Dirs; items?: Record<string, string> } = {}): Promise<LogmanagerRig> {
  const services = ensureServices();
  const h = await startAgents([logmanager], { dirs: opts.dirs, settings: { dockerSocket: services.dockerSocket } });
  const items = await h.publisher(ConfigItemValueMapCollection);
  const domains = await h.publisher(DomainStatusCollection);
  const standIn = new StandIn(await h.publisher(LogBatchAckCollection), h.bus);
  const setItems = (extra: Record<string, string>): void => { items.publish('global', { items: { ...defaultConfigItems(), ...extra } }); };
  setItems(opts.items ?? {});
  return {
    h, items, domains, standIn, setItems,
    async stop() {
      standIn.close();
      await h.stop();
    },
  };
}

export const docker = (): Docker => new Docker({ socketPath: ensureServices().dockerSocket });

/** Runs `script` (busybox sh) in a container of the test image; removed by the returned cleanup. */
export async function runApp(instance: string, script: string): Promise<{ id: string; remove(): Promise<void> }> {
  const d = docker();
  const c = await d.createContainer({
    Image: ensureServices().baseImage,
    Cmd: ['sh', '-c', script],
    Labels: { [LABEL_OWNED]: 'true', [LABEL_INSTANCE]: instance },
    HostConfig: { NetworkMode: 'none' },
  });
  await c.start();
  return { id: c.id, remove: () => c.remove({ force: true }).then(() => undefined, () => undefined) };
}

export function domainStatus(appId: string, name: string, containerId: string, extra: Partial<DomainStatus> = {}): DomainStatus {
  return { appId, name, state: 'RUNNING', activated: true, specHash: 's1', containerId, restarts: 0, ...extra };
}

export const newAppId = (): string => randomUUID();

/** Removes a harness's temporary root (run, persist, config are under it). */
export function removeDirs(dirs: Dirs): void {
  fs.rmSync(path.dirname(dirs.run), { recursive: true, force: true });
}

/** awk in the busybox image: `n` lines "<prefix> <i> <pad>" on stdout (pad: `padHex` random hex digits). */
export function numberedLines(prefix: string, n: number, padHex = 0, stream: 'stdout' | 'stderr' = 'stdout'): string {
  const pad = padHex > 0
    ? `s=""; for(j=0;j<${Math.ceil(padHex / 8)};j++) s=s sprintf("%08x", int(rand()*4294967295)); s=substr(s,1,${padHex});`
    : 's="";';
  const redirect = stream === 'stderr' ? ' > "/dev/stderr"' : '';
  return `awk 'BEGIN{srand(); for(i=1;i<=${n};i++){ ${pad} print "${prefix}", i, s${redirect} }}'`;
}
