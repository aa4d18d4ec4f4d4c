// nim: network interfaces, connectivity to the controller, DHCP for local networks.
// Not implemented yet (issue 5). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/nim.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const nim: AgentSpec = {
  name: 'nim',
  summary: 'network interfaces, connectivity to the controller, DHCP for local networks (not yet implemented: liveness only)',
  help: `Keeps the device connected to its controller: port configurations, address, route and DNS management,
connectivity tests with fallback, and DHCP service on local ports.

Status: not yet implemented (issue 5). Today nim joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
