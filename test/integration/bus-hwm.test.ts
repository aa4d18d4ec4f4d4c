// ZeroMQ PUB drops messages past its high-water mark. The bus must notice the
// gaps and resync, so what a subscriber's handlers end with is the publisher's state.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { entries, startPeer, startPublisher, tempDirs, type Peer } from '../fixtures/peer';

async function expectSameState(t: Test, pub: Peer, sub: Peer, marker: number): Promise<void> {
  // Updates apply in sequence order: once the marker is seen, everything before it is too.
  await pub.call('publish', { type: 'Item', key: 'end', value: { n: marker } });
  await sub.waitForValue('Item', 'end', { n: marker });
  const expected = (await pub.call('state', { type: 'Item', side: 'pub' })).entries;
  t.same((await sub.call('state', { type: 'Item' })).entries, expected, `${sub.name}: the handlers end with the publisher's state`);
}

t.test('a subscriber that cannot keep up loses messages to the HWM and repairs them', async (t) => {
  const dirs = tempDirs(t);
  const pub = await startPublisher(t, 'pub', { ...dirs, hwm: 100 });
  await pub.call('publication', { type: 'Item', entries: entries(1000), signal: true });
  const sub = await startPeer(t, 'sub', dirs);
  await sub.call('subscribe', { type: 'Item', echo: 'end' });
  await sub.waitFor((e) => e.ev === 'synchronized', 'synchronized');

  // The subscriber stops reading until the whole burst has left the publisher,
  // so far more than every queue on the way can hold is certainly dropped.
  const go = path.join(dirs.root, 'go');
  const unfrozen = sub.request('freeze', { file: go });
  await sub.waitFor((e) => e.ev === 'frozen', 'frozen');
  const burst = await pub.call('burst', { type: 'Item', prefix: 'k', keys: 1000, count: 200_000, batch: 2000, start: 1000 }, 120_000);
  t.equal(burst.written, 200_000, 'the publisher sent 200k updates');
  fs.writeFileSync(go, '');
  await unfrozen;

  await expectSameState(t, pub, sub, 1);
  const { mirror, link } = await sub.stats('Item');
  t.ok(mirror.gaps >= 1, `the subscriber detected the loss (gaps: ${mirror.gaps})`);
  t.ok(link.resyncs >= 2, `and resynced beyond its first snapshot (snapshot requests: ${link.resyncs})`);
  t.ok(mirror.applied < 200_000, `it did not get every update live (applied ${mirror.applied})`);
});

t.test('saturating bursts to two live subscribers at the default HWM', async (t) => {
  const dirs = tempDirs(t);
  const pub = await startPublisher(t, 'pub', dirs);
  await pub.call('publication', { type: 'Item', entries: entries(500), signal: true });
  const subs = await Promise.all([startPeer(t, 'sub1', dirs), startPeer(t, 'sub2', dirs)]);
  for (const sub of subs) {
    await sub.call('subscribe', { type: 'Item', echo: 'end' });
    await sub.waitFor((e) => e.ev === 'synchronized', `${sub.name} synchronized`);
  }
  // Whether anything is dropped here depends on the machine; the outcome must not.
  for (let round = 1; round <= 2; round++) {
    await pub.call('burst', { type: 'Item', prefix: 'k', keys: 2000, count: 100_000, batch: 5000, start: round * 1_000_000 }, 120_000);
    for (const sub of subs) await expectSameState(t, pub, sub, round);
  }
});
