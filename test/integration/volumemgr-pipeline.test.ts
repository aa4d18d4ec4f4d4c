// volumemgr in-process on a real bus, with the real Docker engine and registry:
// a registry image becomes a Docker image with the expected id, a blank volume
// becomes a directory, a restart neither downloads nor loads again, and dropping
// every reference removes volumes, image and blobs.
import t from 'tap';
import { volumemgr } from '../../agents/volumemgr/main';
import { startFakeContentAgents } from '../lib/volumemgr-fakes';
import { volumeStory } from '../lib/volumemgr-story';

t.test('registry image and blank volume: created, kept across a restart, removed when unreferenced', async (t) => {
  await volumeStory(t, {
    agents: [volumemgr],
    async start(h, registry) {
      const fakes = await startFakeContentAgents(h, registry);
      return { downloads: () => fakes.counters.downloads, stop: () => fakes.stop() };
    },
  });
});
