// verifier: checks the sha256 (and optional signature) of every downloaded blob
// and keeps accepted ones, read-only, under <persist>/vault/verifier/verified.
// Wiring only: decisions in planner.ts, files in store-driver.ts.
import { untilAborted, type AgentSpec } from '../agent';
import { contentStore } from '../../lib/content-store';
import {
  ConfigItemValueMapCollection, PublisherKeysCollection, VerifyImageConfigCollection, VerifyImageStatusCollection, configItem,
} from '../../pubsub/collections';
import type { Subscription } from '../../pubsub/subscription';
import { VerifiedStore } from './store-driver';
import { Verifications } from './verifications';

export const verifier: AgentSpec = {
  name: 'verifier',
  summary: 'checks the sha256 (and optional signature) of every downloaded blob',
  help: `Streams a sha256 over every downloaded blob and accepts only what its digest (and size, and
ed25519 publisher signature when given) names; re-checks verified content at start.

Subscribes VerifyImageConfig (volumemgr), PublisherKeys and ConfigItemValueMap (zedagent).
Publishes VerifyImageStatus. Files: <persist>/vault/verifier/verified/<hex> (mode 0444).
Config items: content.signature.required.`,
  run: async (ctx) => {
    const paths = contentStore(ctx.dirs.persist);
    const store = new VerifiedStore(paths.verified, paths.pending);
    const pub = ctx.publish(VerifyImageStatusCollection);
    // Read lazily by the closures below; they exist before any handler runs.
    const keys = ctx.subscribe(PublisherKeysCollection, { create: () => verifications.reconcileAll(), modify: () => verifications.reconcileAll(), delete: () => verifications.reconcileAll() });
    const items = ctx.subscribe(ConfigItemValueMapCollection, { create: () => verifications.reconcileAll(), modify: () => verifications.reconcileAll() });
    let configs: Subscription<(typeof VerifyImageConfigCollection)['schema']> | undefined; // after the scan
    const verifications: Verifications = new Verifications(ctx, pub, store, {
      config: (d) => configs?.get(d),
      configs: () => configs?.keys() ?? [],
      keys: () => keys.get('global')?.keys ?? [],
      signatureRequired: () => configItem(items.get('global')?.items, 'content.signature.required'),
    });

    await verifications.scan();
    if (ctx.signal.aborted) return;
    pub.signalRestarted();

    configs = ctx.subscribe(VerifyImageConfigCollection, {
      create: (d) => verifications.reconcile(d), modify: (d) => verifications.reconcile(d), delete: (d) => verifications.reconcile(d),
    });
    await untilAborted(ctx.signal);
    await verifications.stop();
  },
};
