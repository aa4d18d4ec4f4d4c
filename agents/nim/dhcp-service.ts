// The DHCP service nim runs on local-network ports: one DhcpServer per port that
// has `dhcpServer`, started, restarted on a changed address or pool, stopped when
// the port leaves the configuration. Leases live in <persist>/nim/ per port, so
// they survive restarts of nim and of the device. A server that cannot start (UDP
// port 67 taken, say) is reported in the port's status and tried again on its own
// with a backoff; a reconcile meanwhile leaves it alone, and the error is logged
// only when it changes.
import * as path from 'node:path';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../../lib/backoff';
import type { Logger } from '../../lib/log';
import { DhcpServer } from './dhcp-server';
import type { LocalNetworkPort, LocalNetworks, LocalNetworkStatus } from './local-networks';

interface Running {
  /** The port's address and pool as the server was started with them. */
  spec: string;
  server: DhcpServer;
  error?: string;
  /** Failed starts in a row (the backoff's attempt number). */
  failures: number;
  retry?: NodeJS.Timeout;
}

export interface DhcpServiceOptions {
  persistDir: string;
  log: Logger;
  /** Delays between attempts to start a server that failed (DEFAULT_BACKOFF: 1 s doubling to 60 s). */
  backoff?: BackoffPolicy;
  /** A server's status changed on its own (a retry started it, or failed differently). */
  onChange?: () => void;
}

export class DhcpService implements LocalNetworks {
  private readonly servers = new Map<string, Running>();
  /** The error last logged per port: the same error again is not logged again. */
  private readonly logged = new Map<string, string>();
  /** apply, retries and stop one at a time: a retry must not start a server that apply is stopping. */
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: DhcpServiceOptions) {}

  apply(ports: readonly LocalNetworkPort[]): Promise<void> {
    return this.serial(() => this.applyNow(ports));
  }

  status(ifName: string): LocalNetworkStatus | undefined {
    const r = this.servers.get(ifName);
    if (!r) return undefined;
    const s = r.server.status();
    return r.error ? { ...s, error: r.error } : s;
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.serial(async () => {
      for (const ifName of [...this.servers.keys()]) await this.stopOne(ifName);
    });
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {}); // the caller hears of a failure; the next one still runs
    return run;
  }

  private async applyNow(ports: readonly LocalNetworkPort[]): Promise<void> {
    if (this.stopped) return;
    const want = new Map(ports.map((p) => [p.ifName, p]));
    for (const [ifName, r] of this.servers) {
      const p = want.get(ifName);
      if (!p || specOf(p) !== r.spec) await this.stopOne(ifName);
      if (!p) this.logged.delete(ifName);
    }
    for (const p of ports) {
      if (this.servers.has(p.ifName)) continue; // running, or waiting for its next attempt
      const server = new DhcpServer({
        ifName: p.ifName, address: p.address, config: p.config, log: this.opts.log,
        stateFile: path.join(this.opts.persistDir, 'nim', `dhcp-leases-${p.ifName}.json`),
      });
      const running: Running = { spec: specOf(p), server, failures: 0 };
      this.servers.set(p.ifName, running);
      await this.startOne(p, running);
    }
  }

  private async startOne(p: LocalNetworkPort, r: Running): Promise<void> {
    try {
      await r.server.start();
    } catch (err) {
      const error = (err as Error).message;
      r.error = error;
      r.failures += 1;
      const delay = backoffDelay(this.opts.backoff ?? DEFAULT_BACKOFF, r.failures);
      if (this.logged.get(p.ifName) !== error) this.opts.log.error('cannot serve DHCP', { port: p.ifName, error, retryInSeconds: delay / 1000 });
      this.logged.set(p.ifName, error);
      r.retry = setTimeout(() => {
        r.retry = undefined;
        this.serial(async () => {
          if (this.stopped || this.servers.get(p.ifName) !== r) return; // stopped, or replaced meanwhile
          await this.startOne(p, r);
          this.opts.onChange?.();
        }).catch((e: unknown) => this.opts.log.error('DHCP server retry failed', { port: p.ifName, error: (e as Error).message }));
      }, delay);
      return;
    }
    r.failures = 0;
    delete r.error;
    this.logged.delete(p.ifName);
    this.opts.log.info('serving DHCP', { port: p.ifName, address: p.address, range: `${p.config.rangeStart}-${p.config.rangeEnd}` });
  }

  private async stopOne(ifName: string): Promise<void> {
    const r = this.servers.get(ifName);
    this.servers.delete(ifName);
    if (!r) return;
    if (r.retry) clearTimeout(r.retry);
    try {
      await r.server.stop();
    } catch (err) {
      this.opts.log.warn('stopping the DHCP server failed', { port: ifName, error: (err as Error).message });
    }
  }
}

function specOf(p: LocalNetworkPort): string {
  return JSON.stringify({ address: p.address, config: p.config });
}
