// What a publishing agent is told when it gets things wrong, and that nothing it
// got wrong (nor an unchanged value) ever reaches a subscriber in another process.
import t from 'tap';
import { startPeer, startPublisher, tempDirs, type PeerEvent } from '../fixtures/peer';

const errorOf = (reply: PeerEvent): Record<string, unknown> => {
  if (reply.ok) throw new Error(`expected ${String(reply.op)} to fail, it succeeded: ${JSON.stringify(reply)}`);
  return reply.error as Record<string, unknown>;
};

t.test('publish errors name what is wrong, and only real changes reach subscribers', async (t) => {
  const dirs = tempDirs(t);
  const pub = await startPublisher(t, 'pub', dirs);
  await pub.call('publication', { type: 'Item', entries: { k1: { n: 1, meta: { tag: 'a' } } } });
  await pub.call('publication', { type: 'Tiny' });
  const sub = await startPeer(t, 'sub', dirs);
  await sub.call('subscribe', { type: 'Item' });
  await sub.call('subscribe', { type: 'Tiny' });
  await sub.waitFor((e) => e.ev === 'synchronized' && e.type === 'Item', 'Item synchronized');
  await sub.waitFor((e) => e.ev === 'synchronized' && e.type === 'Tiny', 'Tiny synchronized');
  const from = sub.mark();

  const tooBig = errorOf(await pub.request('publish', { type: 'Tiny', key: 'big', value: { n: 1, pad: 'x'.repeat(100) } }));
  const bytes = JSON.stringify({ n: 1, pad: 'x'.repeat(100) }).length;
  t.match(tooBig, { name: 'ValueTooLargeError', type: 'Tiny', key: 'big', bytes, limit: 64 }, 'ValueTooLargeError carries type, key and sizes');
  t.match(tooBig.message, `Tiny/big: value is ${bytes} bytes, over the 64-byte limit of Tiny`, 'and says them');
  const overDefault = errorOf(await pub.request('publish', { type: 'Item', key: 'huge', value: { n: 1, pad: 'x'.repeat(70_000) } }));
  t.match(overDefault, { name: 'ValueTooLargeError', key: 'huge', limit: 64 * 1024 }, 'the default limit is 64 KiB');

  const wrongType = errorOf(await pub.request('publish', { type: 'Item', key: 'k1', value: { n: 'one' } }));
  t.match(wrongType, { name: 'InvalidValueError', type: 'Item', key: 'k1' }, 'a schema-invalid value gives InvalidValueError');
  t.match(wrongType.message, /\/n: /, 'naming the bad field');
  const nested = errorOf(await pub.request('publish', { type: 'Item', key: 'k1', value: { n: 1, meta: { tag: 5 } } }));
  t.match(nested.problems, [/^\/meta\/tag: /], 'a bad nested field is named by its path');
  t.match(errorOf(await pub.request('publish', { type: 'Item', key: 'k1', value: { pad: 'no n' } })).message, /\/n: /, 'a missing field is named');

  t.match(errorOf(await pub.request('publish', { type: 'Item', key: '', value: { n: 1 } })), { name: 'InvalidKeyError' }, 'an empty key is refused');
  t.match(errorOf(await pub.request('unpublish', { type: 'Item', key: 'nope' })), { name: 'UnknownKeyError', key: 'nope' }, 'unpublishing an unknown key is refused');

  // Equal JSON, other key order and a new object: not a change.
  const same = await pub.call('publish', { type: 'Item', key: 'k1', value: { meta: { tag: 'a' }, n: 1 } });
  t.equal(same.changed, false, 'publishing an equal value reports no change');
  t.equal((await pub.call('publish', { type: 'Item', key: 'k1', value: { n: 2 } })).changed, true, 'a different value is a change');
  await pub.call('publish', { type: 'Tiny', key: 'ok', value: { n: 1 } });
  await sub.waitForValue('Item', 'k1', { n: 2 }, from);
  await sub.waitForValue('Tiny', 'ok', { n: 1 }, from);

  t.same(sub.handlerEvents('Item', from).map((e) => [e.ev, e.key, e.value]), [['modify', 'k1', { n: 2 }]],
    'Item subscribers heard only the one real change');
  t.same(sub.handlerEvents('Tiny', from).map((e) => [e.ev, e.key, e.value]), [['create', 'ok', { n: 1 }]],
    'Tiny subscribers heard only the valid value');
  const info = (await pub.stats('Item')).pub;
  t.equal(info?.seq, 2, 'refused and unchanged publishes used no sequence number (1 initial + 1 change)');
});

t.test('only the owner can publish a collection', async (t) => {
  const dirs = tempDirs(t);
  const pub = await startPublisher(t, 'pub', dirs, 'beta');
  const notOwner = errorOf(await pub.request('publication', { agent: 'beta', type: 'Item' }));
  t.match(notOwner, { name: 'NotOwnerError', type: 'Item', agent: 'beta', owner: 'alpha' }, 'NotOwnerError names both agents');
  t.match(notOwner.message, 'beta cannot publish Item: it is owned by alpha', 'and says so');
  t.match(errorOf(await pub.request('publication', { agent: 'beta', type: 'Nope' })), { name: 'UnknownCollectionError' },
    'an undeclared type is refused');

  // The refused publication left nothing behind: alpha can still publish Item.
  await pub.call('endpoint', { agent: 'alpha' });
  await pub.call('publication', { agent: 'alpha', type: 'Item', entries: { k: { n: 1 } } });
  const sub = await startPeer(t, 'sub', dirs);
  await sub.call('subscribe', { type: 'Item' });
  await sub.waitForValue('Item', 'k', { n: 1 });
  t.pass("the owner's values reach subscribers");
});
