// volumemgr: turns verified content into volumes and container images, with reference counts.
// Wiring only: the loop is in manager.ts, decisions in plan.ts, effects in *-driver.ts.
import type { AgentSpec } from '../agent';
import { VolumeManager } from './manager';

export const volumemgr: AgentSpec = {
  name: 'volumemgr',
  summary: 'fetches content through downloader and verifier, loads images into Docker, makes volumes, with reference counts',
  help: `Turns content trees into Docker images and volumes (EVE's volumemgr):
  - resolves a registry tag once and latches it (ResolvedTag, persistent), so a restart never moves an app;
  - asks the downloader and the verifier for the manifest, then for the config and every layer;
  - assembles a docker-archive from the verified blobs and loads it into Docker as
    zedbox-<instance>/<name>:<12 hex of the manifest digest>;
  - creates volumes for apps (an image, an empty directory, or a copy of a raw file) under
    <persist>/vault/volumes/<volumeId>#<generation>#<localGeneration>;
  - counts references and removes volumes, images and blobs nothing needs any more.
It waits until the downloader and verifier have restarted and the configs are synchronized before it
creates or deletes anything. Config items: blob.download.max.retries, storage.reserve.mib, timer.gc.content.`,
  run: (ctx) => new VolumeManager(ctx).run(),
};
