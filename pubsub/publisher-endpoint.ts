// One owner agent's presence on the bus: a PUB socket for updates and heartbeats,
// a ROUTER socket answering snapshot and listing requests, and the lock that makes
// it the only process bound there.
import * as fs from 'node:fs';
import type { TSchema } from '@sinclair/typebox';
import { Publisher, Router } from 'zeromq';
import { RateLimitedLog, type Logger } from '../lib/log';
import type { Catalog, CollectionSpec } from './catalog';
import { EndpointLock } from './endpoint-lock';
import { ClosedError, NotOwnerError, UnknownCollectionError } from './errors';
import { EVERY_AGENT } from './owners';
import { endpointPaths, ensureBusDir, ipc } from './paths';
import { PersistentStore } from './persistent-store';
import { Publication } from './publication';
import { receiveEach } from './receive-loop';
import { SendQueue } from './send-queue';
import { encodeHeartbeat, encodeSnapshot, type PublisherInfo } from './wire';

export interface EndpointOptions {
  agent: string;
  runDir: string;
  persistDir: string;
  catalog: Catalog;
  log: Logger;
  /** Heartbeat period; a tail heartbeat also follows each burst of updates. */
  heartbeatMs: number;
  /** Per-subscriber queue length before libzmq drops (gaps are then repaired by resync). */
  sendHighWaterMark: number;
}

const TAIL_HEARTBEAT_MS = 20;
const MAX_REQUEST_BYTES = 1024;

export class PublisherEndpoint {
  readonly agent: string;
  readonly startedAt = new Date().toISOString();
  private readonly pubs = new Map<string, Publication>();
  private readonly pubQueue: SendQueue;
  private readonly routerQueue: SendQueue;
  private readonly warn: RateLimitedLog;
  private heartbeatTimer?: NodeJS.Timeout;
  private tailTimer?: NodeJS.Timeout;
  private closed = false;
  /** Malformed requests received on the ROUTER socket. */
  badRequests = 0;

  private constructor(
    private readonly opts: EndpointOptions,
    private readonly lock: EndpointLock,
    private readonly pub: Publisher,
    private readonly router: Router,
  ) {
    this.agent = opts.agent;
    this.pubQueue = new SendQueue(pub);
    this.routerQueue = new SendQueue(router);
    this.warn = new RateLimitedLog(opts.log);
  }

  static async open(opts: EndpointOptions): Promise<PublisherEndpoint> {
    const paths = endpointPaths(opts.runDir, opts.agent);
    ensureBusDir(opts.runDir);
    const lock = await EndpointLock.acquire(opts.runDir, opts.agent, ipc(paths.pub));
    const pub = new Publisher({ linger: 0, sendHighWaterMark: opts.sendHighWaterMark });
    const router = new Router({ linger: 0, maxMessageSize: MAX_REQUEST_BYTES, sendHighWaterMark: 1000, sendTimeout: 0 });
    try {
      // Anything at these paths belongs to a dead owner: we hold the lock.
      fs.rmSync(paths.pub, { force: true });
      fs.rmSync(paths.req, { force: true });
      await pub.bind(ipc(paths.pub));
      await router.bind(ipc(paths.req));
    } catch (err) {
      pub.close();
      router.close();
      lock.release();
      throw err;
    }
    const ep = new PublisherEndpoint(opts, lock, pub, router);
    void receiveEach(router, (f) => ep.answer(f), opts.log, { agent: opts.agent, socket: 'requests' });
    ep.heartbeatTimer = setInterval(() => ep.heartbeat(), opts.heartbeatMs);
    ep.heartbeatTimer.unref();
    return ep;
  }

  /** Creates this agent's publication of `type`; only the declared owner may. If the agent had
   *  one before in this process (it crashed and restarted), the new one keeps its content. */
  publication<S extends TSchema>(typeOrSpec: string | CollectionSpec<S>): Publication<S> {
    if (this.closed) throw new ClosedError(`${this.agent}: bus endpoint is closed`);
    const spec = typeof typeOrSpec === 'string' ? this.opts.catalog.get(typeOrSpec) : typeOrSpec;
    if (!spec) throw new UnknownCollectionError(typeOrSpec as string);
    if (spec.owner !== this.agent && spec.owner !== EVERY_AGENT) throw new NotOwnerError(spec.type, this.agent, spec.owner);
    const existing = this.pubs.get(spec.type);
    if (existing && !existing.isClosed) throw new Error(`${this.agent} already has an open publication of ${spec.type}`);
    const store = spec.persistent ? new PersistentStore(PersistentStore.dirFor(this.opts.persistDir, this.agent, spec.type)) : undefined;
    const sink = { send: (frames: Buffer[]) => this.send(frames), drained: () => this.pubQueue.drained() };
    // A closed one is the same agent's previous run in this process: the new one continues it.
    const previous = existing as unknown as Publication<S> | undefined;
    const publication = new Publication(spec as CollectionSpec<S>, this.agent, sink, this.opts.log, store, previous);
    this.pubs.set(spec.type, publication as unknown as Publication);
    this.heartbeat(); // subscribers waiting for this publication resync at once
    return publication;
  }

  /** The PUB queue in this process: waiting now, the most ever waiting, dropped past its byte cap. */
  get backlog(): { pending: number; peak: number; dropped: number } {
    return { pending: this.pubQueue.pending, peak: this.pubQueue.peak, dropped: this.pubQueue.dropped };
  }

  info(): PublisherInfo {
    return {
      agent: this.agent,
      pid: process.pid,
      startedAt: this.startedAt,
      pubs: [...this.pubs.values()].filter((p) => !p.isClosed).map((p) => p.info()),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.tailTimer);
    for (const p of this.pubs.values()) p.close();
    this.pub.close();
    this.router.close();
    this.lock.release();
  }

  private send(frames: Buffer[]): void {
    this.pubQueue.push(frames);
    if (!this.tailTimer) {
      this.tailTimer = setTimeout(() => {
        this.tailTimer = undefined;
        this.heartbeat();
      }, TAIL_HEARTBEAT_MS);
      this.tailTimer.unref();
    }
  }

  private heartbeat(): void {
    if (this.closed) return;
    const pubs: Record<string, [number, number]> = {};
    for (const p of this.pubs.values()) if (!p.isClosed) pubs[p.type] = [p.epoch, p.seq];
    this.pubQueue.push(encodeHeartbeat({ agent: this.agent, pid: process.pid, pubs }));
  }

  private answer(frames: Buffer[]): void {
    const [identity, reqId, op, arg] = frames;
    if (frames.length !== 4 || !identity || !reqId || reqId.length !== 4 || !op || op.length !== 1 || !arg) {
      this.badRequests++;
      this.warn.warn('bad-request', 'malformed bus request dropped', { agent: this.agent, frames: frames.length });
      return;
    }
    switch (op.toString()) {
      case 'S': {
        const publication = this.pubs.get(arg.toString());
        if (!publication || publication.isClosed) {
          this.routerQueue.push([identity, reqId, Buffer.from('N'), arg]);
        } else {
          this.routerQueue.push([identity, ...encodeSnapshot(reqId, publication.snapshot())]);
        }
        return;
      }
      case 'L':
        this.routerQueue.push([identity, reqId, Buffer.from('L'), Buffer.from(JSON.stringify(this.info()))]);
        return;
      default:
        this.badRequests++;
        this.warn.warn('bad-op', 'unknown bus request dropped', { agent: this.agent });
    }
  }
}
