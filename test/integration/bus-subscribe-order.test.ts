// A subscription never calls its handlers from inside subscribe(): an agent that
// subscribes to state its process already holds (another agent subscribed first)
// must be able to finish wiring itself before any handler runs.
import t from 'tap';
import { DatastoreConfigCollection } from '../../pubsub/collections';
import { startAgents } from '../lib/agent-harness';

const ID = '11111111-1111-4111-8111-111111111111';

t.test('handlers run after subscribe() returns, even when the state is already here', async (t) => {
  const h = await startAgents([]);
  t.teardown(() => h.stop());
  const pub = await h.publisher(DatastoreConfigCollection);
  pub.publish(ID, { id: ID, type: 'registry', url: 'http://127.0.0.1:5000' });
  await h.waitFor(DatastoreConfigCollection, ID, (v) => v !== undefined, 'the first subscriber has the value');

  const calls: string[] = [];
  let returned = false;
  const seen = new Promise<void>((resolve) => {
    const sub = h.bus.subscribe(DatastoreConfigCollection, {
      agent: 'late',
      create: (key) => { calls.push(`create ${key} after return: ${returned}`); },
      synchronized: () => { calls.push(`synchronized after return: ${returned}`); resolve(); },
    });
    t.teardown(() => sub.close());
    t.equal(sub.get(ID)?.type, 'registry', 'the state is readable at once');
  });
  returned = true;
  await seen;
  t.same(calls, [`create ${ID} after return: true`, 'synchronized after return: true'], 'no handler ran inside subscribe()');
});
