// downloader: fetches content from HTTP datastores and OCI registries into the content store.
// Not implemented yet (issue 3). Until then it joins the bus, owns its
// endpoint and proves its liveness (AgentStatus, <run>/downloader.touch); it
// publishes nothing that would claim work it does not do.
import { untilAborted, type AgentSpec } from '../agent';

export const downloader: AgentSpec = {
  name: 'downloader',
  summary: 'fetches content from HTTP datastores and OCI registries into the content store (not yet implemented: liveness only)',
  help: `Fetches blobs and images into a content-addressed store, resumable across network cuts and restarts,
with progress, retries and free-space checks.

Status: not yet implemented (issue 3). Today downloader joins the bus and reports its liveness only.`,
  run: (ctx) => untilAborted(ctx.signal),
};
