// One process per agent endpoint. libzmq would let a second process bind the same
// ipc:// path and silently steal it from the first one's subscribers; the bus must
// refuse instead, name the live holder, and free the endpoint when the holder dies.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { entries, startPeer, startPublisher, tempDirs, type PeerEvent } from '../fixtures/peer';

const errorOf = (reply: PeerEvent): Record<string, unknown> => {
  if (reply.ok) throw new Error(`expected ${String(reply.op)} to fail, it succeeded: ${JSON.stringify(reply)}`);
  return reply.error as Record<string, unknown>;
};

t.test('a second process cannot bind a live endpoint; it can once the holder is SIGKILLed', async (t) => {
  const dirs = tempDirs(t);
  const a = await startPublisher(t, 'a', dirs);
  await a.call('publication', { type: 'Item', entries: entries(3) });
  const sub = await startPeer(t, 'sub', dirs);
  await sub.call('subscribe', { type: 'Item' });
  await sub.waitFor((e) => e.ev === 'synchronized', 'synchronized');

  const b = await startPeer(t, 'b', dirs);
  const busy = errorOf(await b.request('endpoint', { agent: 'alpha' }));
  t.match(busy, { name: 'EndpointBusyError', agent: 'alpha', holderPid: a.pid }, 'EndpointBusyError names the live holder');
  t.match(busy.message, `owned by live process ${a.pid}`, 'and its message says which process');
  t.match(busy.message, `${dirs.run}/bus/alpha.pub`, 'and which endpoint');

  // The refused bind stole nothing: a's subscriber still hears a.
  let from = sub.mark();
  await a.call('publish', { type: 'Item', key: 'k0', value: { n: 100 } });
  await sub.waitForValue('Item', 'k0', { n: 100 }, from);
  t.pass("a's subscribers still hear a after b was refused");
  // A theft would show on new connections: the socket paths must still lead to a.
  const late = await startPeer(t, 'late', dirs);
  await late.call('subscribe', { type: 'Item' });
  await late.waitForValue('Item', 'k0', { n: 100 });
  t.pass('a subscriber connecting after the refusal reaches a');

  t.equal((await a.kill('SIGKILL')).signal, 'SIGKILL', 'a died by SIGKILL');
  // No waiting for a stale lock: the kernel released it with the process.
  await b.call('endpoint', { agent: 'alpha' });
  t.pass('b binds at its first attempt after a died');
  from = sub.mark();
  await b.call('publication', { type: 'Item', entries: { k0: { n: 7 }, k9: { n: 9 } } });
  await sub.waitForValue('Item', 'k9', { n: 9 }, from);
  t.same((await sub.call('state', { type: 'Item' })).entries, { k0: { n: 7 }, k9: { n: 9 } }, "the subscriber follows b's state");

  const c = await startPeer(t, 'c', dirs);
  t.match(errorOf(await c.request('endpoint', { agent: 'alpha' })), { name: 'EndpointBusyError', holderPid: b.pid },
    'the next contender is told b holds it now');
  t.match(errorOf(await b.request('endpoint', { agent: 'alpha' })), { name: 'EndpointBusyError', holderPid: b.pid },
    'binding twice within one process is refused too');
  await c.call('endpoint', { agent: 'beta' });
  t.pass("the lock is per agent: c binds beta's endpoint");
});

t.test('a closed endpoint can be bound by another process at once', async (t) => {
  const dirs = tempDirs(t);
  const a = await startPublisher(t, 'a', dirs);
  const b = await startPeer(t, 'b', dirs);
  t.match(errorOf(await b.request('endpoint', { agent: 'alpha' })), { name: 'EndpointBusyError' }, 'refused while a holds it');
  await a.call('closeEndpoint', { agent: 'alpha' });
  await b.call('endpoint', { agent: 'alpha' });
  t.pass('b binds as soon as a closed its endpoint, while a still runs');
  t.equal(a.exit, undefined, 'a is still running');
});

t.test('the same run directory spelled differently is still the same endpoint', async (t) => {
  const dirs = tempDirs(t);
  const a = await startPublisher(t, 'a', dirs);
  // /var/run is a symlink to /run on most systems; a trailing slash is just as easy to add.
  const alias = path.join(dirs.root, 'alias');
  fs.symlinkSync(dirs.run, alias);
  for (const run of [`${dirs.run}/`, alias]) {
    const b = await startPeer(t, `b ${run}`, { ...dirs, run });
    t.match(errorOf(await b.request('endpoint', { agent: 'alpha' })), { name: 'EndpointBusyError', holderPid: a.pid },
      `binding through ${run} is refused`);
  }
});
