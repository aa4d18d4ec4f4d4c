// logmanager: collects agent and app logs and ships them to the controller.
// Not implemented yet (issue 5). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/logmanager.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const logmanager: AgentSpec = {
  name: 'logmanager',
  summary: 'collects agent and app logs and ships them to the controller (not yet implemented: liveness only)',
  help: `Collects the agents' structured logs and the apps' output, batches and compresses them, and sends them
to the controller with acknowledgement, queueing on disk while offline.

Status: not yet implemented (issue 5). Today logmanager joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
