// The bus as one process sees it: the endpoints of the agents it runs (to
// publish) and its links to other owners (to subscribe). Agents in one process
// share it; agents in other processes meet it on the same ipc:// sockets.
import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from '../lib/log';
import type { Catalog, CollectionSpec } from './catalog';
import { CATALOG } from './collections';
import { EndpointBusyError, UnknownCollectionError } from './errors';
import { EVERY_AGENT } from './owners';
import { PeerLink } from './peer-link';
import { PublisherEndpoint } from './publisher-endpoint';
import { Subscription, type SubscribeOptions } from './subscription';

export interface BusOptions {
  runDir: string;
  persistDir: string;
  log: Logger;
  catalog?: Catalog;
  heartbeatMs?: number;
  snapshotTimeoutMs?: number;
  maxSnapshotTimeoutMs?: number;
  sendHighWaterMark?: number;
}

export class Bus {
  readonly catalog: Catalog;
  private readonly endpoints = new Map<string, PublisherEndpoint>();
  private readonly opening = new Set<string>();
  private readonly links = new Map<string, PeerLink>();
  private closed = false;

  constructor(private readonly opts: BusOptions) {
    this.catalog = opts.catalog ?? CATALOG;
  }

  get runDir(): string { return this.opts.runDir; }

  /** Binds `agent`'s endpoint; fails with EndpointBusyError when a live process holds it. */
  async endpoint(agent: string): Promise<PublisherEndpoint> {
    if (this.endpoints.has(agent) || this.opening.has(agent)) {
      throw new EndpointBusyError(agent, `${this.opts.runDir}/bus/${agent}.pub`, process.pid, 'this process already binds it');
    }
    this.opening.add(agent);
    try {
      const ep = await PublisherEndpoint.open({
        agent,
        runDir: this.opts.runDir,
        persistDir: this.opts.persistDir,
        catalog: this.catalog,
        log: this.opts.log,
        heartbeatMs: this.opts.heartbeatMs ?? 1000,
        sendHighWaterMark: this.opts.sendHighWaterMark ?? 10_000,
      });
      this.endpoints.set(agent, ep);
      return ep;
    } finally {
      this.opening.delete(agent);
    }
  }

  async closeEndpoint(agent: string): Promise<void> {
    const ep = this.endpoints.get(agent);
    this.endpoints.delete(agent);
    await ep?.close();
  }

  /** Subscribes to a collection by type name (from the catalogue) or by spec. */
  subscribe<S extends TSchema>(typeOrSpec: string | CollectionSpec<S>, opts: SubscribeOptions<Readonly<Static<S>>>): Subscription<S> {
    const spec = (typeof typeOrSpec === 'string' ? this.catalog.get(typeOrSpec) : typeOrSpec) as CollectionSpec<S> | undefined;
    if (!spec) throw new UnknownCollectionError(typeOrSpec as string);
    const owner = spec.owner === EVERY_AGENT ? opts.owner : spec.owner;
    if (!owner) throw new Error(`${spec.type} is published by every agent: say which one with the owner option`);
    if (opts.owner && opts.owner !== owner) throw new Error(`${spec.type} is owned by ${spec.owner}, not ${opts.owner}`);
    const link = this.link(owner);
    const sub = new Subscription<S>(spec, owner, opts, this.opts.log, (s) => this.unlink(owner, s as unknown as Subscription));
    link.attach(spec as unknown as CollectionSpec, sub as unknown as Subscription);
    return sub;
  }

  link(owner: string): PeerLink {
    let link = this.links.get(owner);
    if (!link) {
      link = new PeerLink({
        owner,
        runDir: this.opts.runDir,
        persistDir: this.opts.persistDir,
        log: this.opts.log,
        snapshotTimeoutMs: this.opts.snapshotTimeoutMs ?? 1000,
        maxSnapshotTimeoutMs: this.opts.maxSnapshotTimeoutMs ?? 5000,
      });
      this.links.set(owner, link);
    }
    return link;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    await Promise.all([...this.endpoints.values()].map((ep) => ep.close()));
    this.endpoints.clear();
  }

  private unlink(owner: string, sub: Subscription): void {
    const link = this.links.get(owner);
    if (!link) return;
    link.detach(sub);
    if (link.channelCount === 0) {
      link.close();
      this.links.delete(owner);
    }
  }
}
