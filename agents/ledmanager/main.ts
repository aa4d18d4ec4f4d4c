// ledmanager: shows the device state as LED blink codes.
// Not implemented yet (issue 5). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/ledmanager.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const ledmanager: AgentSpec = {
  name: 'ledmanager',
  summary: 'shows the device state as LED blink codes (not yet implemented: liveness only)',
  help: `Shows the device's state on an LED as EVE's blink codes, through Linux's sysfs LED interface or the
console.

Status: not yet implemented (issue 5). Today ledmanager joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
