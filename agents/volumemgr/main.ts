// volumemgr: turns verified content into volumes and container images, with reference counts.
// Not implemented yet (issue 3). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/volumemgr.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const volumemgr: AgentSpec = {
  name: 'volumemgr',
  summary: 'turns verified content into volumes and container images, with reference counts (not yet implemented: liveness only)',
  help: `Assembles verified layers into images loaded into Docker, creates blank volumes, and garbage-collects
what nothing refers to.

Status: not yet implemented (issue 3). Today volumemgr joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
