// nim's DHCP server for a local-network port: a UDP socket on port 67 that feeds client packets
// to the pure lease table (dhcp-leases.ts) and sends its answers, and the lease file that lets
// leases survive a restart. Node cannot bind a UDP socket to one interface (no SO_BINDTODEVICE),
// so the socket listens on 0.0.0.0:67 and only one port may serve DHCP; replies leave through
// the port by going to its subnet's directed broadcast (its connected route), or to the client's
// own address when it has one (RFC 2131 §4.1).
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { writeJsonAtomicSync } from '../../lib/atomic-file';
import type { Logger } from '../../lib/log';
import type { DhcpServerConfig } from '../../pubsub/collections/network';
import { LeaseTable, type Decision, type LeaseView, type Outcome } from './dhcp-leases';
import { MalformedPacket, decodeRequest, encodeReply, type DhcpRequestPacket } from './dhcp-packet';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
/** Lease-file writes are coalesced: a burst of bindings costs one write. */
const PERSIST_DELAY_MS = 200;

export interface DhcpServerOptions {
  ifName: string;
  /** The port's own address, CIDR (10.77.0.1/24). */
  address: string;
  /** leaseSeconds below the schema's 60 are accepted (tests use a few seconds). */
  config: DhcpServerConfig;
  /** The lease file (JSON, written atomically). */
  stateFile: string;
  log: Logger;
  now?: () => number;
  /** How long an OFFER holds its address (default 60 s) and a DECLINEd one stays out of the pool (600 s). */
  offerSeconds?: number;
  declineSeconds?: number;
}

export interface DhcpServerCounters {
  received: number;
  malformed: number;
  sent: number;
  sendErrors: number;
  outcomes: Partial<Record<Outcome, number>>;
}

export class DhcpServer {
  private readonly opts: DhcpServerOptions;
  private readonly now: () => number;
  private readonly table?: LeaseTable;
  private readonly configError?: string;
  private socket?: dgram.Socket;
  private persistTimer?: NodeJS.Timeout;
  private dirty = false;
  private bindError?: string;
  private persistError?: string;
  private socketError?: string;
  private poolFullLogged = false;
  private restored = false;
  private readonly stats: DhcpServerCounters = { received: 0, malformed: 0, sent: 0, sendErrors: 0, outcomes: {} };

  /** Checks the configuration (status() reports a bad one; start() throws it) and does nothing else. */
  constructor(opts: DhcpServerOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    try {
      this.table = new LeaseTable(opts.address, opts.config, {
        ...(opts.offerSeconds !== undefined ? { offerSeconds: opts.offerSeconds } : {}),
        ...(opts.declineSeconds !== undefined ? { declineSeconds: opts.declineSeconds } : {}),
      });
    } catch (err) {
      this.configError = (err as Error).message;
    }
  }

  /** Restores the lease file and listens; throws an error naming the port when it cannot serve. */
  async start(): Promise<void> {
    if (this.socket) return;
    const { ifName } = this.opts;
    if (!this.table) throw new Error(`DHCP server on ${ifName}: ${this.configError}`);
    // Once: a start that failed to bind is tried again on the same server (the lease file read and any bad entries set aside once).
    if (!this.restored) {
      this.restore(this.table);
      this.restored = true;
    }
    const socket = dgram.createSocket({ type: 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ port: DHCP_SERVER_PORT, address: '0.0.0.0', exclusive: true }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      socket.setBroadcast(true);
    } catch (err) {
      socket.close();
      this.bindError = `cannot listen on UDP port ${DHCP_SERVER_PORT}: ${(err as Error).message}`;
      throw new Error(`DHCP server on ${ifName}: ${this.bindError}`);
    }
    this.bindError = undefined;
    socket.on('message', (buf, rinfo) => this.onPacket(buf, rinfo.address));
    // A send or receive error must not take the agent down: it is logged and shown in status().
    socket.on('error', (err) => {
      this.socketError = `socket error: ${err.message}`;
      this.opts.log.error('DHCP socket error', { ifName, err });
    });
    this.socket = socket;
    const s = this.table.subnet;
    this.opts.log.info('DHCP server started', { ifName, subnet: s.describeSubnet(), pool: s.describePool(), poolSize: s.poolSize, leases: this.table.boundCount(this.now()) });
  }

  /** Stops listening and writes the lease file. */
  async stop(): Promise<void> {
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    this.persistNow();
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    this.opts.log.info('DHCP server stopped', { ifName: this.opts.ifName });
  }

  status(): { leases: number; poolSize: number; error?: string } {
    const error = this.configError ?? this.bindError ?? this.socketError ?? this.persistError;
    return { leases: this.table?.boundCount(this.now()) ?? 0, poolSize: this.table?.poolSize ?? 0, ...(error ? { error } : {}) };
  }

  /** Bound, offered and declined addresses, lowest first. */
  leases(): LeaseView[] {
    return this.table?.leases(this.now()) ?? [];
  }

  counters(): DhcpServerCounters {
    return { ...this.stats, outcomes: { ...this.stats.outcomes } };
  }

  private onPacket(buf: Buffer, from: string): void {
    const table = this.table;
    if (!table || !this.socket) return;
    this.stats.received += 1;
    let req: DhcpRequestPacket;
    try {
      req = decodeRequest(buf);
    } catch (err) {
      this.stats.malformed += 1;
      const reason = err instanceof MalformedPacket ? err.reason : String(err);
      this.opts.log.debug('DHCP packet ignored', { ifName: this.opts.ifName, from, reason });
      return;
    }
    const now = this.now();
    for (const gone of table.expire(now)) this.opts.log.info('DHCP lease expired', { ifName: this.opts.ifName, ip: gone.ip, mac: gone.mac });
    const d = table.handle(req, now);
    this.stats.outcomes[d.outcome] = (this.stats.outcomes[d.outcome] ?? 0) + 1;
    this.logDecision(req, d);
    if (d.persist) this.schedulePersist();
    if (d.reply !== 'none' && d.options) this.send(req, d);
  }

  private send(req: DhcpRequestPacket, d: Decision): void {
    const socket = this.socket;
    if (!socket || !this.table || d.reply === 'none' || !d.options) return;
    const buf = encodeReply({
      type: d.reply, xid: req.xid, flags: req.flags, ciaddr: d.reply === 'ACK' ? req.ciaddr : '0.0.0.0',
      yiaddr: d.yiaddr, giaddr: '0.0.0.0', mac: req.mac, options: d.options,
    });
    const to = d.unicast ?? this.table.subnet.broadcast;
    socket.send(buf, DHCP_CLIENT_PORT, to, (err) => {
      if (!err) { this.stats.sent += 1; return; }
      this.stats.sendErrors += 1;
      this.opts.log.warn('DHCP reply not sent', { ifName: this.opts.ifName, type: d.reply, to, err: err.message });
    });
  }

  private logDecision(req: DhcpRequestPacket, d: Decision): void {
    const log = this.opts.log;
    const f = { ifName: this.opts.ifName, type: req.type, mac: req.mac, ...(req.hostname ? { hostname: req.hostname } : {}) };
    switch (d.outcome) {
      case 'bind': log.info('DHCP lease bound', { ...f, ip: d.yiaddr }); break;
      case 'release': case 'decline': case 'nak': log.info(`DHCP ${d.outcome}`, { ...f, detail: d.detail }); break;
      case 'pool-full':
        // Once per episode: a full pool sees a DISCOVER every few seconds from each client left out.
        if (!this.poolFullLogged) log.warn('DHCP pool full: client left without an address', { ...f, detail: d.detail });
        this.poolFullLogged = true;
        return;
      default: log.debug(`DHCP ${d.outcome}`, { ...f, ...(d.yiaddr !== '0.0.0.0' ? { ip: d.yiaddr } : {}), ...(d.detail ? { detail: d.detail } : {}) });
    }
    if (d.outcome === 'offer' || d.outcome === 'bind') this.poolFullLogged = false;
  }

  private schedulePersist(): void {
    this.dirty = true;
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persistNow();
    }, PERSIST_DELAY_MS);
  }

  private persistNow(): void {
    if (!this.dirty || !this.table) return;
    try {
      writeJsonAtomicSync(this.opts.stateFile, this.table.snapshot(this.now()));
      this.dirty = false;
      this.persistError = undefined;
    } catch (err) {
      // Kept dirty: the next change or stop() tries again.
      this.persistError = `cannot write the lease file ${this.opts.stateFile}: ${(err as Error).message}`;
      this.opts.log.error('DHCP lease file not written', { ifName: this.opts.ifName, err: this.persistError });
    }
  }

  /** Loads the lease file; one that cannot be read is moved aside (kept for a person), not lost. */
  private restore(table: LeaseTable): void {
    const file = this.opts.stateFile;
    const log = this.opts.log;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`DHCP server on ${this.opts.ifName}: cannot read the lease file ${file}: ${(err as Error).message}`);
    }
    let r: ReturnType<LeaseTable['restore']>;
    try {
      r = table.restore(JSON.parse(text), this.now());
    } catch (err) {
      const aside = this.asideName('bad');
      try {
        fs.renameSync(file, aside);
      } catch (e) {
        throw new Error(`DHCP server on ${this.opts.ifName}: the lease file ${file} is unreadable (${(err as Error).message}) and cannot be moved aside: ${(e as Error).message}`);
      }
      log.error('DHCP lease file unreadable: moved aside, starting with no leases', { ifName: this.opts.ifName, file, aside, err: (err as Error).message });
      return;
    }
    for (const problem of r.problems) log.warn('DHCP lease file entry dropped', { ifName: this.opts.ifName, file, problem });
    if (r.problems.length > 0) {
      // The next write leaves the dropped entries out: the file as it was is kept beside it.
      const copy = this.asideName('dropped');
      try {
        fs.copyFileSync(file, copy);
      } catch (e) {
        log.warn('DHCP lease file not copied aside', { ifName: this.opts.ifName, file, copy, err: (e as Error).message });
      }
    }
    log.info('DHCP leases restored', { ifName: this.opts.ifName, kept: r.kept, expired: r.expired });
    if (r.problems.length > 0 || r.expired > 0) this.dirty = true;
  }

  private asideName(why: string): string {
    return `${this.opts.stateFile}.${why}-${new Date(this.now()).toISOString().replace(/[:.]/g, '')}`;
  }
}
