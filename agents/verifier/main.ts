// verifier: checks the sha256 (and optional signature) of every downloaded blob.
// Not implemented yet (issue 3). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/verifier.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const verifier: AgentSpec = {
  name: 'verifier',
  summary: 'checks the sha256 (and optional signature) of every downloaded blob (not yet implemented: liveness only)',
  help: `Streams a sha256 over every blob and accepts only what the config or manifest names; re-checks
verified content at start.

Status: not yet implemented (issue 3). Today verifier joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
