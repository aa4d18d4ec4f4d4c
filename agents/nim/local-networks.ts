// The hook through which nim serves DHCP on local-network ports. nim calls
// apply() after every reconcile with the ports of the applied configuration that
// have `dhcpServer` (their address is on the link by then), and status() when it
// builds DeviceNetworkStatus. main.ts passes DhcpService (dhcp-service.ts: one
// DhcpServer per port); NO_LOCAL_NETWORKS, which serves nothing, is for tests of
// the rest of nim.
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
