// The hook through which nim serves DHCP on local-network ports. nim calls
// apply() after every reconcile with the ports of the applied configuration that
// have `dhcpServer` (their address is on the link by then), and status() when it
// builds DeviceNetworkStatus.
//
// WIRING POINT for the DHCP server (agents/nim/dhcp-*.ts, DhcpServer): the lead
// passes an implementation that keeps one DhcpServer per port here, in main.ts
// (`localNetworks:` in the NimAgent options). Until then NO_LOCAL_NETWORKS serves
// nothing and reports nothing.
import type { LocalNetworkPort } from './apply-plan';

export type { LocalNetworkPort };

export interface LocalNetworkStatus {
  leases: number;
  poolSize: number;
  error?: string;
}

export interface LocalNetworks {
  /** Serve exactly these ports (start, reconfigure, stop the rest); [] stops every server. */
  apply(ports: readonly LocalNetworkPort[]): Promise<void>;
  status(ifName: string): LocalNetworkStatus | undefined;
  /** nim stops: stop serving. */
  stop(): Promise<void>;
}

export const NO_LOCAL_NETWORKS: LocalNetworks = {
  apply: async () => {},
  status: () => undefined,
  stop: async () => {},
};
