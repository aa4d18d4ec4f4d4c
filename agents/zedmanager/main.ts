// zedmanager: the app-instance state machine: install, boot, restart, purge, delete.
// Not implemented yet (issue 3). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/zedmanager.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const zedmanager: AgentSpec = {
  name: 'zedmanager',
  summary: 'the app-instance state machine: install, boot, restart, purge, delete (not yet implemented: liveness only)',
  help: `Drives each app instance through EVE's states, from download to running, with restart, purge,
activate and delete, and folds errors into the app's status.

Status: not yet implemented (issue 3). Today zedmanager joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
