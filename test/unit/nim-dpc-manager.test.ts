// nim's state machine on a virtual clock, against a stand-in world that says how
// each configuration's test ends: a new configuration tried at once, the fallback
// walk after two failed tests, the return to the preferred one after
// testbetterinterval, waits for an interface or a lease, a broker that refuses
// (the path works), host mode, and a restart from the persisted list.
import t from 'tap';
import { emptyList, entryId, mergeSources } from '../../agents/nim/dpc-list';
import { DpcManager, HOST, RECENT_FAILURE_MS, WAIT_MS, type NimTimers, type Outcome, type Step } from '../../agents/nim/dpc-manager';
import type { DevicePortConfigList, DpcEntry, NetworkPortConfig } from '../../pubsub/collections/network';

const T0 = Date.parse('2024-05-01T10:00:00Z');
const TIMERS: NimTimers = { testIntervalMs: 1000, testBetterIntervalMs: 5000 };
const port = (ifName: string): NetworkPortConfig => ({ ifName, management: true, cost: 0, addressing: { type: 'static', address: '10.0.0.2/24', gateway: '10.0.0.1' } });
const portsOf = (ifName: string): NetworkPortConfig[] => [port(ifName)];
const ifOf = (e: DpcEntry): string => e.ports[0]!.ifName;

/** The manager, a world deciding each test by the port's name, and a record of the steps, at virtual times. */
function sim(opts: { restored?: DevicePortConfigList; timers?: NimTimers; now?: number } = {}) {
  let now = opts.now ?? T0;
  const m = new DpcManager(opts.restored, opts.timers ?? TIMERS, now);
  const world = new Map<string, Outcome>();
  const steps: string[] = [];
  const run = (list: Step[]): void => {
    const queue = [...list];
    while (queue.length) {
      const s = queue.shift()!;
      if (s.kind === 'verify') {
        steps.push(`verify ${ifOf(s.entry)} ${s.why}`);
        queue.push(...m.tested(s.id, world.get(ifOf(s.entry)) ?? { state: 'success' }, now));
      } else if (s.kind === 'apply') {
        steps.push(`apply ${ifOf(s.entry)}`);
      } else if (s.kind === 'host') {
        steps.push('host');
      } else {
        steps.push('test-host');
        queue.push(...m.tested(HOST, world.get(HOST) ?? { state: 'success' }, now));
      }
    }
  };
  return {
    m, world, steps,
    get now() { return now; },
    start() { run(m.start(now)); },
    sources(src: Parameters<DpcManager['setSources']>[0]) { run(m.setSources(src, now)); },
    /** Advances the clock to now+ms, running everything that falls due on the way. */
    advance(ms: number) {
      const until = now + ms;
      for (;;) {
        const at = m.nextWakeAt();
        if (at === undefined || at > until) break;
        now = Math.max(now, at);
        run(m.tick(now));
      }
      now = until;
    },
    take(): string[] { return steps.splice(0); },
    current(): string | undefined { const e = m.list.list[m.list.currentIndex]; return e && ifOf(e); },
    entry(ifName: string): DpcEntry { return m.list.list.find((e) => ifOf(e) === ifName)!; },
  };
}

t.test('nothing configured: host mode, tested every interval, until a configuration comes and after it goes', async (t) => {
  const s = sim();
  s.start();
  t.same(s.take(), ['host', 'test-host'], 'nothing applied; the host is tested at once');
  t.equal(s.m.state, 'success');
  s.advance(2500);
  t.same(s.take(), ['test-host', 'test-host'], 'every test interval');
  s.sources({ zedagent: portsOf('ethA') });
  t.same(s.take(), ['verify ethA new'], 'a configuration is applied and tested at once');
  t.equal(s.current(), 'ethA');
  s.sources({ zedagent: null });
  t.same(s.take(), ['host', 'test-host'], 'withdrawn: back to the host as it is');
  t.equal(s.m.list.currentIndex, -1);
});

t.test('a new configuration that fails: back to the last one that worked, with the reason kept', async (t) => {
  const s = sim();
  s.start();
  s.sources({ local: [portsOf('ethB')] });
  t.equal(s.current(), 'ethB');
  s.take();
  s.world.set('ethA', { state: 'fail', error: 'broker 10.9.0.1:1883: connection timed out after 1 s through ethA' });
  s.sources({ zedagent: portsOf('ethA') });
  t.same(s.take(), ['verify ethA new', 'verify ethB fallback'], 'tried at once, then the last working one again');
  t.equal(s.current(), 'ethB');
  t.equal(s.m.list.currentIndex, 1, 'the fallback is below the preferred one');
  t.equal(s.entry('ethA').state, 'fail');
  t.match(s.entry('ethA').lastError, 'connection timed out after 1 s through ethA');
  t.equal(s.m.applied, entryId(s.entry('ethB')), 'what is applied is the fallback');
});

t.test('two failed tests start the walk; recent failures are skipped; better retried after testbetterinterval', async (t) => {
  const s = sim();
  s.start();
  s.take();
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  t.same(s.take(), ['verify ethA new'], 'the top is tried at once');
  t.equal(s.current(), 'ethA');
  s.world.set('ethA', { state: 'fail', error: 'ethA: cut' });
  s.advance(1000);
  t.same(s.take(), ['verify ethA periodic'], 'one failure: nothing changes yet');
  t.equal(s.current(), 'ethA');
  s.advance(1000);
  t.same(s.take(), ['verify ethA periodic', 'verify ethB walk'], 'the second failure walks: ethA (failed just now) skipped, ethB tested');
  t.equal(s.current(), 'ethB');
  t.equal(s.entry('ethA').state, 'fail');

  // ethA still broken at the first better test: ethB is put back.
  s.advance(4999);
  t.same(s.take(), ['verify ethB periodic', 'verify ethB periodic', 'verify ethB periodic', 'verify ethB periodic'], 'ethB tested every interval');
  s.advance(1);
  t.same(s.take(), ['verify ethB periodic', 'verify ethA better', 'apply ethB'], 'at testbetterinterval: ethA tried, failed, ethB applied again');
  t.equal(s.current(), 'ethB');
  // Repaired: the next better test moves back.
  s.world.delete('ethA');
  s.advance(5000);
  t.same(s.take().filter((x) => !x.includes('periodic')), ['verify ethA better']);
  t.equal(s.current(), 'ethA');
  t.equal(s.m.list.currentIndex, 0);
  t.equal(s.entry('ethA').lastError, undefined, 'the old error is cleared');
  s.advance(10_000);
  t.notOk(s.take().some((x) => x.includes('better')), 'no better test while the best is in use');
});

t.test('testbetterinterval 0: never goes back by itself', async (t) => {
  const s = sim({ timers: { testIntervalMs: 1000, testBetterIntervalMs: 0 } });
  s.start();
  s.world.set('ethA', { state: 'fail', error: 'x' });
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  t.equal(s.current(), 'ethB', 'walked past ethA');
  s.world.delete('ethA');
  s.take();
  s.advance(60_000);
  const seen = s.take();
  t.equal(seen.length, 60);
  t.ok(seen.every((x) => x === 'verify ethB periodic'), 'only the periodic tests of ethB');
});

t.test('nothing passes: the last one that worked stays applied, and the walk is retried', async (t) => {
  const s = sim();
  s.start();
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  s.take();
  s.world.set('ethA', { state: 'fail', error: 'a' });
  s.world.set('ethB', { state: 'fail', error: 'b' });
  s.advance(2000);
  t.same(s.take(), ['verify ethA periodic', 'verify ethA periodic', 'verify ethB walk', 'apply ethA'], 'ethB failed too: ethA (last working) put back');
  t.equal(s.current(), 'ethA');
  s.world.delete('ethB');
  s.advance(1000);
  t.same(s.take(), ['verify ethA periodic'], 'one more failure of ethA; ethB failed within the minute, so it is skipped');
  t.equal(s.current(), 'ethA');
  s.advance(RECENT_FAILURE_MS);
  t.equal(s.current(), 'ethB', 'once the failure is old enough, the retried walk finds ethB');
});

t.test('a missing interface waits (intf-wait), retried each second, then fails after 30 s', async (t) => {
  const s = sim();
  s.start();
  s.sources({ local: [portsOf('ethB')] });
  s.take();
  s.world.set('ethA', { state: 'intf-wait', error: 'ethA: no such interface' });
  s.sources({ zedagent: portsOf('ethA') });
  t.same(s.take(), ['verify ethA new']);
  t.equal(s.entry('ethA').state, 'intf-wait');
  t.equal(s.m.nextWakeAt(), s.now + 1000, 'tried again in a second');
  s.advance(WAIT_MS - 1);
  t.ok(s.take().every((x) => x === 'verify ethA new'), 'only ethA is tried while it waits');
  t.equal(s.current(), 'ethB', 'the current one stays current meanwhile');
  s.advance(1000);
  t.same(s.take().slice(-2), ['verify ethA new', 'verify ethB fallback']);
  t.equal(s.entry('ethA').state, 'fail');
  t.equal(s.entry('ethA').lastError, 'ethA: no such interface after 30 s');
});

t.test('a DHCP lease that comes within the wait: success', async (t) => {
  const s = sim();
  s.start();
  s.world.set('ethC', { state: 'ipdns-wait', error: 'ethC: no DHCP lease' });
  s.sources({ zedagent: portsOf('ethC') });
  t.equal(s.entry('ethC').state, 'ipdns-wait');
  t.equal(s.current(), undefined, 'nothing worked yet');
  s.advance(3000);
  s.world.delete('ethC');
  s.advance(1000);
  t.equal(s.current(), 'ethC');
  t.equal(s.entry('ethC').state, 'success');
});

t.test('a broker that refuses: the path works (remote-wait), no fallback', async (t) => {
  const s = sim();
  s.start();
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  s.world.set('ethA', { state: 'remote-wait', error: 'broker 10.9.0.1:1883: connection refused through ethA' });
  s.advance(5000);
  t.equal(s.current(), 'ethA');
  t.equal(s.entry('ethA').state, 'remote-wait');
  t.ok(s.entry('ethA').lastSucceeded, 'counts as working');
  t.notOk(s.take().some((x) => x.includes('ethB')), 'ethB never tried');
  t.equal(s.m.state, 'remote-wait');
});

t.test('a restart from the persisted list keeps list, index and results, and re-tests the current one at once', async (t) => {
  const s = sim();
  s.start();
  s.world.set('ethA', { state: 'fail', error: 'a is down' });
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  t.equal(s.current(), 'ethB');
  const saved = JSON.parse(JSON.stringify(s.m.list)) as DevicePortConfigList;

  const r = sim({ restored: saved });
  t.same(r.m.list, saved, 'the same list, index and results');
  r.world.set('ethA', { state: 'fail', error: 'a is down' });
  r.start();
  t.same(r.take(), ['verify ethB periodic'], 'the current one is applied and tested first; the top is not "new"');
  r.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  t.same(r.take(), [], 'the same sources change nothing');
  t.equal(r.entry('ethA').lastError, 'a is down');
});

t.test('a new zedagent version while a fallback is current; withdrawing the current one walks', async (t) => {
  const s = sim();
  s.start();
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB'), portsOf('ethC')] });
  t.equal(s.current(), 'ethA');
  s.take();
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethC')] });
  t.same(s.take(), [], 'removing a file that is not in use changes nothing applied');
  s.sources({ zedagent: null, local: [portsOf('ethC')] });
  t.same(s.take(), ['verify ethC new']);
  t.equal(s.current(), 'ethC');
  t.equal(mergeSources(emptyList(), {}, T0).list.length, 0);
});

t.test('a newer controller version that works: the older one is no longer kept', async (t) => {
  const s = sim();
  s.start();
  s.sources({ zedagent: portsOf('ethC'), local: [portsOf('ethB')] });
  t.equal(s.current(), 'ethC');
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  t.equal(s.current(), 'ethA');
  t.same(s.m.list.list.map(ifOf), ['ethA', 'ethB'], 'ethC (neither current nor last working) is gone, so a fallback goes to the local file');
  s.world.set('ethA', { state: 'fail', error: 'x' });
  s.take();
  s.advance(2000);
  t.same(s.take(), ['verify ethA periodic', 'verify ethA periodic', 'verify ethB walk']);
});

t.test('the last resort is tried last and used when nothing else works', async (t) => {
  const s = sim();
  s.start();
  s.world.set('ethA', { state: 'fail', error: 'a' });
  s.sources({ zedagent: portsOf('ethA'), lastresort: portsOf('eth0') });
  t.same(s.take().filter((x) => x.startsWith('verify')), ['verify ethA new', 'verify eth0 walk']);
  t.equal(s.current(), 'eth0');
  t.equal(s.m.list.list[1]!.key, 'lastresort');
});

t.test('a clock set back: failures stamped in the future are not recent, and a new configuration still ranks first', async (t) => {
  const LATER = T0 + 86_400_000; // the clock the list was written with, a day ahead of the one after the restart
  const s = sim({ now: LATER });
  s.start();
  s.world.set('ethA', { state: 'fail', error: 'a' });
  s.world.set('ethB', { state: 'fail', error: 'b' });
  s.sources({ zedagent: portsOf('ethA'), local: [portsOf('ethB')] });
  t.same(s.take().filter((x) => x.startsWith('verify')), ['verify ethA new', 'verify ethB walk'], 'both failed, a day ahead');
  const saved = JSON.parse(JSON.stringify(s.m.list)) as DevicePortConfigList;

  const r = sim({ restored: saved, now: T0 });
  r.world.set('ethA', { state: 'fail', error: 'a' });
  r.start();
  r.advance(1000);
  t.same(r.take(), ['verify ethA periodic', 'verify ethA periodic', 'verify ethB walk'], 'the walk tries ethB: its failure "in a day" is not a recent one');
  t.equal(r.current(), 'ethB');

  const w = sim({ now: LATER });
  w.start();
  w.sources({ zedagent: portsOf('ethA') });
  t.equal(w.current(), 'ethA');
  const back = sim({ restored: JSON.parse(JSON.stringify(w.m.list)) as DevicePortConfigList, now: T0 });
  back.start();
  back.take();
  back.sources({ zedagent: portsOf('ethC') });
  t.same(back.take(), ['verify ethC new'], 'the new controller configuration is tried at once');
  t.equal(back.current(), 'ethC');
  t.same(back.m.list.list.map(ifOf), ['ethC'], 'and it replaced the older one');
  t.equal(back.m.list.list[0]!.timePriority, new Date(LATER + 1).toISOString(), 'ranked just above the newest of its source');
});
