// domainmgr: runs app instances as containers on the Docker engine.
// Not implemented yet (issue 3). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/domainmgr.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const domainmgr: AgentSpec = {
  name: 'domainmgr',
  summary: 'runs app instances as containers on the Docker engine (not yet implemented: liveness only)',
  help: `Runs app instances as containers through dockerode: limits, mounts, labels, restart with backoff,
adoption of running containers after a restart of zedbox.

Status: not yet implemented (issue 3). Today domainmgr joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
