// zedagent: the controller link: signed config in, info and metrics out (MQTT).
// Not implemented yet (issue 4). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/zedagent.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const zedagent: AgentSpec = {
  name: 'zedagent',
  summary: 'the controller link: signed config in, info and metrics out (MQTT) (not yet implemented: liveness only)',
  help: `The only agent that talks to the controller: onboarding, signed config over MQTT, offline operation
from the last verified config, info and metrics.

Status: not yet implemented (issue 4). Today zedagent joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
