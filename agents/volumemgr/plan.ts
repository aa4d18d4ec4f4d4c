// volumemgr's planner: one pure pass from everything it knows to the
// publications it wants and the steps to take. The agent applies the steps,
// records their results in memory, and plans again until there are none.
import { planBlobFailures, planContentTrees, type ContentPlan } from './content-plan';
import { planBlobConfigs } from './blob-plan';
import { imageRepoPrefix } from './manifest';
import type { Plan, PlanInput } from './types';
import { planVolumes } from './volume-plan';

export function plan(input: PlanInput): Plan {
  const content: ContentPlan = { trees: new Map(), resolve: new Map(), resolvedTags: new Map(), steps: [] };
  planContentTrees(input, content);
  const failedNow = planBlobFailures(input, content);
  const blobs = planBlobConfigs(input, content, failedNow);
  const trees = new Map([...content.trees].map(([id, t]) => [id, t.status]));
  const steps = [...content.steps];
  const vols = planVolumes(input, trees, steps);
  for (const [id, s] of trees) s.refCount = vols.treeRefs.get(id) ?? 0;

  // Images: keep what a content tree or a volume needs; remove the rest of ours.
  const needed = new Set(vols.imageRefs);
  for (const t of content.trees.values()) if (t.imageRef) needed.add(t.imageRef);
  const prefix = imageRepoPrefix(input.facts.instance);
  const settled = [...content.trees.values()].every((t) => t.settled);
  for (const ref of settled ? input.facts.images.keys() : []) {
    if (ref.startsWith(prefix) && !needed.has(ref) && !input.memory.removeBlocked.has(ref)) steps.push({ kind: 'removeImage', imageRef: ref });
  }
  return {
    resolve: content.resolve,
    resolvedTags: content.resolvedTags,
    downloader: blobs.downloader,
    verify: blobs.verify,
    contentTrees: trees,
    volumes: vols.volumes,
    volumeRefs: vols.volumeRefs,
    steps,
  };
}
