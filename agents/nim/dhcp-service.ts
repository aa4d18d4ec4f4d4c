// The DHCP service nim runs on local-network ports: one DhcpServer per port that
// has `dhcpServer`, started, restarted on a changed address or pool, stopped when
// the port leaves the configuration. Leases live in <persist>/nim/ per port, so
// they survive restarts of nim and of the device. A server that cannot start is
// reported in the port's status and tried again at the next reconcile.
import * as path from 'node:path';
import type { Logger } from '../../lib/log';
import { DhcpServer } from './dhcp-server';
import type { LocalNetworkPort, LocalNetworks, LocalNetworkStatus } from './local-networks';

interface Running {
  /** The port's address and pool as the server was started with them. */
  spec: string;
  server: DhcpServer;
  error?: string;
}

export class DhcpService implements LocalNetworks {
  private readonly servers = new Map<string, Running>();

  constructor(private readonly opts: { persistDir: string; log: Logger }) {}

  async apply(ports: readonly LocalNetworkPort[]): Promise<void> {
    const want = new Map(ports.map((p) => [p.ifName, p]));
    for (const [ifName, r] of this.servers) {
      const p = want.get(ifName);
      if (!p || specOf(p) !== r.spec || r.error) await this.stopOne(ifName);
    }
    for (const p of ports) {
      if (this.servers.has(p.ifName)) continue;
      const server = new DhcpServer({
        ifName: p.ifName, address: p.address, config: p.config, log: this.opts.log,
        stateFile: path.join(this.opts.persistDir, 'nim', `dhcp-leases-${p.ifName}.json`),
      });
      const running: Running = { spec: specOf(p), server };
      this.servers.set(p.ifName, running);
      try {
        await server.start();
        this.opts.log.info('serving DHCP', { port: p.ifName, address: p.address, range: `${p.config.rangeStart}-${p.config.rangeEnd}` });
      } catch (err) {
        running.error = (err as Error).message;
        this.opts.log.error('cannot serve DHCP', { port: p.ifName, error: running.error });
      }
    }
  }

  status(ifName: string): LocalNetworkStatus | undefined {
    const r = this.servers.get(ifName);
    if (!r) return undefined;
    const s = r.server.status();
    return r.error ? { ...s, error: r.error } : s;
  }

  async stop(): Promise<void> {
    for (const ifName of [...this.servers.keys()]) await this.stopOne(ifName);
  }

  private async stopOne(ifName: string): Promise<void> {
    const r = this.servers.get(ifName);
    this.servers.delete(ifName);
    if (!r) return;
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
