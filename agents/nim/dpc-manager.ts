// nim's state machine (EVE's DpcManager): which port configuration to apply and
// test, when to fall back, when to try a better one again. Pure: time comes in as
// an argument and what to do goes out as steps the wiring performs, reporting each
// test back with tested(). One test at a time.
import type { DevicePortConfigList, DpcEntry, DpcState } from '../../pubsub/collections/network';
import { entryId, lastWorkingIndex, mergeSources, ms, restoreList, updateEntry, type Sources } from './dpc-list';

/** How long a missing interface or a missing DHCP lease may last before the test counts as failed. */
export const WAIT_MS = 30_000;
/** While waiting for an interface or a lease, the test is repeated this often. */
export const WAIT_RETRY_MS = 1_000;
/** A fallback walk skips entries that failed this recently (EVE: about a minute). */
export const RECENT_FAILURE_MS = 60_000;
/** Consecutive failed tests of the current configuration before nim looks for another. */
export const FAILURES_BEFORE_WALK = 2;

export interface NimTimers {
  /** timer.port.testinterval */
  testIntervalMs: number;
  /** timer.port.testbetterinterval; 0: never. */
  testBetterIntervalMs: number;
}

export type TestState = Exclude<DpcState, 'none' | 'testing'>;
export interface Outcome {
  state: TestState;
  /** In plain words, naming the port: "ethA: no DHCP lease". */
  error?: string;
}

/** Why a configuration is being tested. */
export type Why = 'periodic' | 'new' | 'walk' | 'better' | 'fallback';

export type Step =
  /** Apply the entry (idempotent), test it, and report with tested(id, outcome). */
  | { kind: 'verify'; id: string; entry: DpcEntry; why: Why }
  /** Apply the entry; no test (going back to one that worked). */
  | { kind: 'apply'; id: string; entry: DpcEntry; reason: string }
  /** Nothing is configured: remove whatever nim applied and leave the host as it is. */
  | { kind: 'host' }
  /** Test the path to the controller over the host's routes; report with tested(HOST, outcome). */
  | { kind: 'test-host' };

/** The id tested() takes for a host-mode test. */
export const HOST = 'host';

const isWait = (s: TestState): boolean => s === 'intf-wait' || s === 'ipdns-wait';
export const isWorking = (s: TestState): boolean => s === 'success' || s === 'remote-wait';

export class DpcManager {
  private dpcl: DevicePortConfigList;
  private inflight: { id: string; why: Why } | undefined;
  /** What is on the host: an entry id, HOST, or undefined before the first step. */
  private appliedId: string | undefined;
  private failures = 0;
  private walkPos: number | undefined;
  private pending: { id: string; why: Why; at: number } | undefined;
  private readonly waitSince = new Map<string, number>();
  private nextTestAt: number;
  private nextBetterAt: number;
  private topId: string | undefined;
  private hostResult: (Outcome & { at: number }) | undefined;
  /** What the sources offered last (nothing known at first: the list keeps what it restored). */
  private sources: Sources = {};

  constructor(restored: DevicePortConfigList | undefined, private timers: NimTimers, now: number) {
    this.dpcl = restoreList(restored);
    this.topId = this.dpcl.list[0] && entryId(this.dpcl.list[0]);
    // After a restart the current configuration is applied and tested at once, as EVE does at boot.
    this.nextTestAt = now;
    this.nextBetterAt = now + timers.testBetterIntervalMs;
  }

  get list(): DevicePortConfigList { return this.dpcl; }
  get testing(): boolean { return this.inflight !== undefined; }
  get applied(): string | undefined { return this.appliedId; }
  get hostOutcome(): (Outcome & { at: number }) | undefined { return this.hostResult; }

  /** The state of the configuration in use (host mode: of the last host test). */
  get state(): DpcState {
    if (this.dpcl.list.length === 0) return this.hostResult?.state ?? 'none';
    return this.dpcl.list[this.dpcl.currentIndex]?.state ?? 'none';
  }

  start(now: number): Step[] {
    return this.plan(now);
  }

  tick(now: number): Step[] {
    return this.plan(now);
  }

  setTimers(timers: NimTimers, now: number): Step[] {
    if (timers.testIntervalMs < this.timers.testIntervalMs) this.nextTestAt = Math.min(this.nextTestAt, now + timers.testIntervalMs);
    if (timers.testBetterIntervalMs < this.timers.testBetterIntervalMs) this.nextBetterAt = Math.min(this.nextBetterAt, now + timers.testBetterIntervalMs);
    this.timers = timers;
    return this.plan(now);
  }

  setSources(src: Sources, now: number): Step[] {
    this.sources = { ...src };
    this.dpcl = mergeSources(this.dpcl, src, now);
    const ids = new Set(this.dpcl.list.map(entryId));
    for (const id of this.waitSince.keys()) if (!ids.has(id)) this.waitSince.delete(id);
    if (this.pending && !ids.has(this.pending.id)) this.pending = undefined;
    // Positions moved: walk again from the top (recent failures are skipped anyway).
    if (this.walkPos !== undefined) this.walkPos = 0;
    return this.plan(now);
  }

  /** When tick() next has something to do; undefined while a test runs or nothing is scheduled. */
  nextWakeAt(): number | undefined {
    if (this.inflight) return undefined;
    if (this.pending) return this.pending.at;
    if (this.dpcl.list.length === 0) return this.nextTestAt;
    const better = this.dpcl.currentIndex > 0 && this.timers.testBetterIntervalMs > 0 ? this.nextBetterAt : Infinity;
    return Math.min(this.nextTestAt, better);
  }

  tested(id: string, outcome: Outcome, now: number): Step[] {
    const run = this.inflight;
    this.inflight = undefined;
    if (!run || run.id !== id) return this.plan(now); // a result nobody waits for any more
    if (id === HOST) {
      this.hostResult = { ...outcome, at: now };
      this.nextTestAt = now + this.timers.testIntervalMs;
      return this.plan(now);
    }
    const entry = this.find(id);
    if (!entry) return this.plan(now); // withdrawn while it was tested
    if (isWait(outcome.state)) {
      const since = this.waitSince.get(id) ?? now;
      this.waitSince.set(id, since);
      if (now - since < WAIT_MS) {
        this.patch(id, { state: outcome.state, lastError: outcome.error });
        this.pending = { id, why: run.why, at: now + WAIT_RETRY_MS };
        return this.plan(now);
      }
      outcome = { state: 'fail', error: `${outcome.error ?? 'waited'} after ${WAIT_MS / 1000} s` };
    }
    this.waitSince.delete(id);
    return isWorking(outcome.state) ? this.succeeded(id, outcome, now) : this.failed(id, outcome, run.why, now);
  }

  private succeeded(id: string, outcome: Outcome, now: number): Step[] {
    const before = this.dpcl.currentIndex;
    this.patch(id, { state: outcome.state, lastSucceeded: iso(now), lastError: undefined });
    this.dpcl = { ...this.dpcl, currentIndex: this.indexOf(id) };
    // A new current and last working entry: older versions kept only for being those may go now.
    this.dpcl = mergeSources(this.dpcl, this.sources, now);
    const index = this.dpcl.currentIndex;
    this.failures = 0;
    this.walkPos = undefined;
    this.nextTestAt = now + this.timers.testIntervalMs;
    if (index > 0 && index !== before) this.nextBetterAt = now + this.timers.testBetterIntervalMs;
    return this.plan(now);
  }

  private failed(id: string, outcome: Outcome, why: Why, now: number): Step[] {
    const state = outcome.state === 'fail-with-ip-and-dns' ? outcome.state : 'fail';
    this.patch(id, { state, lastFailed: iso(now), lastError: outcome.error ?? 'test failed' });
    const steps: Step[] = [];
    switch (why) {
      case 'periodic':
        if (++this.failures >= FAILURES_BEFORE_WALK) {
          this.failures = 0;
          this.walkPos = 0;
        } else {
          this.nextTestAt = now + this.timers.testIntervalMs;
        }
        break;
      case 'walk':
        break; // the walk goes on
      case 'new': {
        // Back to the one that worked last; walk only if there is none (or it fails too).
        // The new one is tried again after testbetterinterval.
        this.nextBetterAt = now + this.timers.testBetterIntervalMs;
        const lw = this.dpcl.list[lastWorkingIndex(this.dpcl.list)];
        if (lw && entryId(lw) !== id) this.pending = { id: entryId(lw), why: 'fallback', at: now };
        else this.walkPos = 0;
        break;
      }
      case 'fallback':
        this.walkPos = 0;
        break;
      case 'better': {
        this.nextBetterAt = now + this.timers.testBetterIntervalMs;
        const cur = this.dpcl.list[this.dpcl.currentIndex];
        if (cur && this.appliedId !== entryId(cur)) steps.push(this.applyStep(cur, `${entryId(this.dpcl.list[0]!)} failed again: ${outcome.error ?? ''}`));
        break;
      }
    }
    return [...steps, ...this.plan(now)];
  }

  private plan(now: number): Step[] {
    if (this.inflight) return [];
    const list = this.dpcl.list;
    if (list.length === 0) return this.planHost(now);
    if (this.appliedId === HOST) this.appliedId = undefined;

    // A new configuration at the top is applied and tested at once.
    const top = entryId(list[0]!);
    if (top !== this.topId) {
      this.topId = top;
      if (this.dpcl.currentIndex !== 0) {
        this.pending = { id: top, why: 'new', at: now };
        this.walkPos = undefined;
      }
    }
    if (this.pending) {
      if (now < this.pending.at) return [];
      const p = this.pending;
      this.pending = undefined;
      const e = this.find(p.id);
      if (e) return this.verify(e, p.why);
    }
    if (this.dpcl.currentIndex < 0 && this.walkPos === undefined) this.walkPos = 0;
    if (this.walkPos !== undefined) return this.walkOn(now);
    const cur = list[this.dpcl.currentIndex]!;
    if (now >= this.nextTestAt) return this.verify(cur, 'periodic');
    if (this.dpcl.currentIndex > 0 && this.timers.testBetterIntervalMs > 0 && now >= this.nextBetterAt) {
      this.nextBetterAt = now + this.timers.testBetterIntervalMs;
      return this.verify(list[0]!, 'better');
    }
    return [];
  }

  private planHost(now: number): Step[] {
    const steps: Step[] = [];
    if (this.appliedId !== HOST) {
      this.appliedId = HOST;
      this.topId = undefined;
      this.walkPos = undefined;
      this.pending = undefined;
      this.failures = 0;
      this.nextTestAt = now;
      steps.push({ kind: 'host' });
    }
    if (now >= this.nextTestAt) {
      this.inflight = { id: HOST, why: 'periodic' };
      steps.push({ kind: 'test-host' });
    }
    return steps;
  }

  /** Down the list from the top, skipping what failed within the last minute; the first that works wins. */
  private walkOn(now: number): Step[] {
    const list = this.dpcl.list;
    while (this.walkPos! < list.length) {
      const e = list[this.walkPos!]!;
      this.walkPos!++;
      if (recentlyFailed(e, now)) continue;
      return this.verify(e, 'walk');
    }
    // None worked: keep (or put back) the last one that did, and walk again after the next failed test.
    this.walkPos = undefined;
    this.failures = FAILURES_BEFORE_WALK - 1;
    this.nextTestAt = now + this.timers.testIntervalMs;
    const lw = lastWorkingIndex(list);
    const keep = lw >= 0 ? lw : 0;
    this.dpcl = { ...this.dpcl, currentIndex: keep };
    const e = list[keep]!;
    return this.appliedId === entryId(e) ? [] : [this.applyStep(e, lw >= 0 ? 'no configuration passed its test: back to the last one that worked' : 'no configuration passed its test: keeping the preferred one')];
  }

  private verify(e: DpcEntry, why: Why): Step[] {
    const id = entryId(e);
    this.inflight = { id, why };
    this.appliedId = id;
    return [{ kind: 'verify', id, entry: e, why }];
  }

  private applyStep(e: DpcEntry, reason: string): Step {
    this.appliedId = entryId(e);
    return { kind: 'apply', id: entryId(e), entry: e, reason };
  }

  private find(id: string): DpcEntry | undefined {
    return this.dpcl.list.find((e) => entryId(e) === id);
  }

  private indexOf(id: string): number {
    return this.dpcl.list.findIndex((e) => entryId(e) === id);
  }

  private patch(id: string, p: Partial<DpcEntry>): void {
    this.dpcl = updateEntry(this.dpcl, id, p);
  }
}

/** A failure stamped in the future (the clock went back since) is not recent: it would be skipped for as long as the clock is behind. */
function recentlyFailed(e: DpcEntry, now: number): boolean {
  if (e.lastFailed === undefined || ms(e.lastFailed) <= ms(e.lastSucceeded)) return false;
  const age = now - ms(e.lastFailed);
  return age >= 0 && age < RECENT_FAILURE_MS;
}

function iso(now: number): string {
  return new Date(now).toISOString();
}
