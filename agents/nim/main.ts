// nim: keeps the device connected to its controller (EVE §3.1, §9). Wiring only:
// the loop is nim-agent.ts, the choice of configuration dpc-manager.ts and
// dpc-list.ts (pure), the changes to the host applier.ts with link-driver.ts,
// udhcpc-driver.ts and dns-driver.ts, the tests conn-tester.ts.
import type { AgentSpec } from '../agent';
import { DhcpService } from './dhcp-service';
import { resolvConfPath } from './dns-driver';
import { NimAgent } from './nim-agent';

export const nim: AgentSpec = {
  name: 'nim',
  summary: 'network interfaces: port configurations, addresses, routes, DNS, tests of the path to the controller, fallback',
  help: `Keeps the device connected to its controller. Port configurations (which interfaces are management
ports, DHCP or static addressing, DNS, a proxy) come from zedagent (DevicePortConfig, the config's
networkPorts), from files <config>/DevicePortConfig/*.json (a DevicePortConfig or {"ports": [...]}; a bad
file is reported with its name and field and ignored), and, with network.fallback.any.eth, a last resort
(DHCP on every ethernet port). They are ranked controller > local files > last resort, newer first, in
DevicePortConfigList (persistent: list, current index and test results survive restarts).

nim applies the best one (ip: addresses, a routing table and rule per management port, one default route;
busybox udhcpc for DHCP; name servers to ZEDBOX_RESOLV_CONF or /etc/resolv.conf) and tests it: a TCP
connect (TLS for mqtts) to the broker in <config>/controller.json from each management port, cheapest
first, every timer.port.testinterval s (timeout timer.port.timeout). Two failed tests: it walks the list
from the top and keeps the first that works, or the last one that worked. A new configuration is tried at
once and dropped for the last working one if it fails; while a fallback is in use the preferred one is tried
again every timer.port.testbetterinterval s. What nim adds it records in <run>/nim/applied.json and removes
exactly that when a port or configuration goes away.

With no configuration at all nim changes nothing: it reports the host's network as it is and tests the path
to the controller over the host's routes. Publishes DeviceNetworkStatus and DevicePortConfigList.`,
  async run(ctx) {
    let agent: NimAgent | undefined;
    // A DHCP server that starts on a retry (port 67 freed) shows in the status at once.
    const localNetworks = new DhcpService({ persistDir: ctx.dirs.persist, log: ctx.log, onChange: () => agent?.statusChanged() });
    agent = new NimAgent(ctx, { resolvConf: resolvConfPath(), localNetworks });
    await agent.run();
  },
};
