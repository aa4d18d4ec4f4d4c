// The list nim chooses port configurations from: ranks (controller > local file >
// last resort, newer first), identities kept for unchanged port sets, EVE's
// retention (current and last working survive a newer version), withdrawn sources,
// and the cap of 16.
import t from 'tap';
import { LAST_RESORT_TIME, MAX_ENTRIES, emptyList, entryId, lastWorkingIndex, mergeSources, restoreList, updateEntry } from '../../agents/nim/dpc-list';
import type { NetworkPortConfig } from '../../pubsub/collections/network';

const T0 = Date.parse('2024-05-01T10:00:00Z');
const port = (ifName: string, extra: Partial<NetworkPortConfig> = {}): NetworkPortConfig => ({ ifName, management: true, cost: 0, addressing: { type: 'dhcp' }, ...extra });
const keys = (l: { list: { key: string }[] }): string[] => l.list.map((e) => e.key);

t.test('controller above local files above the last resort; newer first within a source', async (t) => {
  let l = mergeSources(emptyList(), { lastresort: [port('eth0')], local: [[port('eth1')]] }, T0);
  l = mergeSources(l, { zedagent: [port('eth2')] }, T0 + 1000);
  t.same(keys(l), ['zedagent', 'local', 'lastresort']);
  t.equal(l.list[2]!.timePriority, LAST_RESORT_TIME, 'the last resort has the epoch');
  t.equal(l.currentIndex, -1, 'nothing chosen yet');
  // Two local files seen together: both kept, the first by name ranks first.
  l = mergeSources(l, { local: [[port('eth1')], [port('eth3')]] }, T0 + 2000);
  t.same(l.list.map((e) => `${e.key}:${e.ports[0]!.ifName}`), ['zedagent:eth2', 'local:eth3', 'local:eth1', 'lastresort:eth0'].map((x) => x), 'eth1 keeps its older time; eth3 is newer');
  t.equal(new Set(l.list.map(entryId)).size, 4, 'identities are unique');
});

t.test('an unchanged port set keeps its entry and results; a changed one is new', async (t) => {
  let l = mergeSources(emptyList(), { zedagent: [port('eth0')] }, T0);
  const id = entryId(l.list[0]!);
  l = updateEntry(l, id, { state: 'success', lastSucceeded: new Date(T0 + 10).toISOString() });
  l = mergeSources(l, { zedagent: [port('eth0')] }, T0 + 5000);
  t.equal(entryId(l.list[0]!), id, 'same time priority');
  t.equal(l.list[0]!.state, 'success', 'results kept');
  // Not current and the last working one: the new version replaces it... unless retained.
  l = { ...l, currentIndex: 0 };
  l = mergeSources(l, { zedagent: [port('eth0', { cost: 5 })] }, T0 + 6000);
  t.same(keys(l), ['zedagent', 'zedagent'], 'the old version stays while it is current and last working');
  t.equal(l.list[0]!.ports[0]!.cost, 5, 'the newest first');
  t.equal(l.list[0]!.state, 'none', 'not tested yet');
  t.equal(l.currentIndex, 1, 'current found again by identity');
  t.equal(lastWorkingIndex(l.list), 1);
  // Once the newest works and is current, a third version drops the first.
  const newest = entryId(l.list[0]!);
  l = updateEntry({ ...l, currentIndex: 0 }, newest, { state: 'success', lastSucceeded: new Date(T0 + 7000).toISOString() });
  l = mergeSources(l, { zedagent: [port('eth0', { cost: 9 })] }, T0 + 8000);
  t.same(l.list.map((e) => e.ports[0]!.cost), [9, 5], 'version 1 (neither current nor last working) is gone');
});

t.test('a source that withdraws loses all its entries; an unknown one keeps them', async (t) => {
  let l = mergeSources(emptyList(), { zedagent: [port('eth0')], local: [[port('eth1')]] }, T0);
  l = { ...updateEntry(l, entryId(l.list[0]!), { lastSucceeded: new Date(T0).toISOString(), state: 'success' }), currentIndex: 0 };
  const kept = mergeSources(l, { local: [] }, T0 + 1);
  t.same(keys(kept), ['zedagent'], 'zedagent unknown: kept; local files gone');
  const gone = mergeSources(l, { zedagent: null }, T0 + 2);
  t.same(keys(gone), ['local'], 'zedagent withdrew: even its current, last working entry goes');
  t.equal(gone.currentIndex, -1);
});

t.test('the last resort keeps one identity and starts over when the ports change', async (t) => {
  let l = mergeSources(emptyList(), { lastresort: [port('eth0')] }, T0);
  l = { ...updateEntry(l, entryId(l.list[0]!), { state: 'success', lastSucceeded: new Date(T0).toISOString() }), currentIndex: 0 };
  l = mergeSources(l, { lastresort: [port('eth0'), port('eth1')] }, T0 + 1);
  t.equal(l.list.length, 1);
  t.equal(l.list[0]!.ports.length, 2);
  t.equal(l.list[0]!.state, 'none', 'results start over');
  t.equal(l.currentIndex, 0, 'still current');
  t.same(keys(mergeSources(l, { lastresort: null }, T0 + 2)), [], 'switched off: gone');
});

t.test('capped at 16 without losing the current or last working entry', async (t) => {
  const files = Array.from({ length: 20 }, (_, i) => [port(`eth${i}`)]);
  let l = mergeSources(emptyList(), { local: files }, T0);
  t.equal(l.list.length, MAX_ENTRIES);
  const last = l.list[MAX_ENTRIES - 1]!;
  l = { ...updateEntry(l, entryId(last), { state: 'success', lastSucceeded: new Date(T0).toISOString() }), currentIndex: MAX_ENTRIES - 1 };
  l = mergeSources(l, { zedagent: [port('wan0')], local: files }, T0 + 10);
  t.equal(l.list.length, MAX_ENTRIES);
  t.equal(l.list[0]!.key, 'zedagent');
  t.ok(l.list.some((e) => entryId(e) === entryId(last)), 'the current, last working entry survives the cap');
  t.equal(entryId(l.list[l.currentIndex]!), entryId(last));
});

t.test('a restored list is sorted and its current index found again', async (t) => {
  const l = mergeSources(emptyList(), { zedagent: [port('eth0')], local: [[port('eth1')]] }, T0);
  const saved = JSON.parse(JSON.stringify({ currentIndex: 0, list: [...l.list].reverse() }));
  const r = restoreList(saved);
  t.same(keys(r), ['zedagent', 'local']);
  t.equal(r.currentIndex, 1, 'the saved current (local) is found at its sorted place');
  t.same(restoreList(undefined), emptyList());
});

t.test('a clock behind the list: a new entry still ranks first within its source', async (t) => {
  const LATER = T0 + 86_400_000;
  let l = mergeSources(emptyList(), { zedagent: [port('eth0')], local: [[port('eth1')]] }, LATER);
  l = updateEntry({ ...l, currentIndex: 0 }, entryId(l.list[0]!), { state: 'success', lastSucceeded: new Date(LATER).toISOString() });
  l = mergeSources(l, { zedagent: [port('eth2')], local: [[port('eth1')], [port('eth3')]] }, T0);
  t.same(l.list.map((e) => `${e.key}:${e.ports[0]!.ifName}`), ['zedagent:eth2', 'zedagent:eth0', 'local:eth3', 'local:eth1'], 'the new ones above the old ones (kept: current)');
  t.equal(l.list[0]!.timePriority, new Date(LATER + 1).toISOString(), '1 ms past the newest of its source');
  t.equal(l.list[2]!.timePriority, new Date(LATER + 1).toISOString());
  l = mergeSources(l, { zedagent: [port('eth4')], local: [[port('eth5')], [port('eth6')]] }, T0 + 5);
  t.same(l.list.map((e) => `${e.key}:${e.ports[0]!.ifName}`).slice(0, 1), ['zedagent:eth4']);
  t.same(l.list.filter((e) => e.key === 'local').map((e) => e.ports[0]!.ifName), ['eth5', 'eth6'], 'files seen together: the first by name first');
  t.equal(new Set(l.list.map(entryId)).size, l.list.length, 'identities stay unique');
});
