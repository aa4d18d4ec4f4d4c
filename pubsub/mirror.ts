// A subscriber's replica of one publication, as a pure state machine: it takes
// decoded, validated messages and returns the handler events they cause and
// whether a fresh snapshot is needed. No I/O, no clocks, so every rule of the
// bus (gaps, publisher restarts, deletes missed while away) is tested directly.
import { charSum, jsonEqual as sameJson } from './equal';

export type MirrorEvent =
  | { kind: 'create'; key: string; value: unknown }
  | { kind: 'modify'; key: string; value: unknown; old: unknown }
  | { kind: 'delete'; key: string; old: unknown }
  | { kind: 'synchronized' }
  | { kind: 'restarted'; counter: number };

export type MirrorUpdate =
  /** `json` is the value's text on the wire; when given it makes equality checks cheap. */
  | { op: 'set'; epoch: number; seq: number; key: string; value: unknown; json?: string }
  | { op: 'del'; epoch: number; seq: number; key: string }
  | { op: 'restarted'; epoch: number; seq: number; counter: number }
  /** A SET whose value failed validation: it advances the sequence but changes nothing. */
  | { op: 'invalid'; epoch: number; seq: number; key: string };

export interface MirrorSnapshot {
  epoch: number;
  seq: number;
  restarted: number;
  /** Validated entries; keys listed in `invalidKeys` keep their current value. */
  entries: Map<string, unknown>;
  invalidKeys?: Set<string>;
  /** The entries' wire text, where known. */
  texts?: Map<string, string>;
}

export interface Step {
  events: MirrorEvent[];
  /** The replica can no longer vouch for its state: ask the publisher for a snapshot. */
  resync: boolean;
  /** Why a resync is needed, for the log. */
  reason?: string;
}

export type MirrorStatus = 'waiting' | 'syncing' | 'live';

/** Updates held while a snapshot is on its way; past this, hold none and resync again. */
export const MAX_BUFFERED_UPDATES = 50_000;

const NOTHING: Step = Object.freeze({ events: [], resync: false }) as Step;

export class Mirror {
  status: MirrorStatus = 'waiting';
  epoch = 0;
  seq = 0;
  restarted = 0;
  synchronized = false;
  readonly entries = new Map<string, unknown>();
  /** Wire text of entries that came with it: equal text means an equal value, no deep compare. */
  private readonly texts = new Map<string, string>();
  /** Counters for ipcmonitor and tests. */
  readonly stats = { gaps: 0, resyncs: 0, epochChanges: 0, applied: 0 };

  private buffer: MirrorUpdate[] = [];
  private overflowed = false;
  private restartedEpoch = 0;

  /** Values known before any publisher answered (a persistent collection's files). */
  preload(entries: Map<string, unknown>): MirrorEvent[] {
    const events: MirrorEvent[] = [];
    for (const [key, value] of entries) {
      if (this.entries.has(key)) continue;
      this.entries.set(key, value);
      events.push({ kind: 'create', key, value });
    }
    return events;
  }

  /** A snapshot request went out; hold updates until it is answered. */
  beginSync(): void {
    this.status = 'syncing';
    this.buffer = [];
    this.overflowed = false;
    this.stats.resyncs++;
  }

  /** Whether an update at (epoch, seq) would be applied or held: if not, its value is never looked at. */
  wants(epoch: number, seq: number): boolean {
    if (this.status === 'syncing') return true;
    return this.status === 'live' && epoch === this.epoch && seq === this.seq + 1;
  }

  onUpdate(u: MirrorUpdate): Step {
    if (this.status !== 'live') {
      if (this.status === 'syncing') {
        if (this.buffer.length >= MAX_BUFFERED_UPDATES) {
          this.buffer = [];
          this.overflowed = true;
        } else if (!this.overflowed) {
          this.buffer.push(u);
        }
        return NOTHING;
      }
      return { events: [], resync: true, reason: 'update before first snapshot' };
    }
    if (u.epoch !== this.epoch) {
      this.stats.epochChanges++;
      return this.lost('publisher restarted (new epoch)');
    }
    if (u.seq <= this.seq) return NOTHING; // already covered by the snapshot
    if (u.seq !== this.seq + 1) {
      this.stats.gaps++;
      return this.lost(`gap: expected seq ${this.seq + 1}, got ${u.seq}`);
    }
    return { events: this.apply(u), resync: false };
  }

  onSnapshot(s: MirrorSnapshot): Step {
    const events: MirrorEvent[] = [];
    for (const [key, old] of this.entries) {
      if (!s.entries.has(key) && !s.invalidKeys?.has(key)) {
        this.entries.delete(key);
        this.texts.delete(key);
        events.push({ kind: 'delete', key, old });
      }
    }
    for (const [key, value] of s.entries) events.push(...this.set(key, value, s.texts?.get(key), false));
    this.epoch = s.epoch;
    this.seq = s.seq;
    this.status = 'live';
    if (!this.synchronized) {
      this.synchronized = true;
      events.push({ kind: 'synchronized' });
    }
    events.push(...this.noteRestarted(s.epoch, s.restarted));

    const held = this.buffer;
    const overflowed = this.overflowed;
    this.buffer = [];
    this.overflowed = false;
    if (overflowed) return { events, resync: true, reason: 'too many updates while syncing' };
    for (const u of held) {
      const step = this.onUpdate(u);
      events.push(...step.events);
      if (step.resync) return { events, resync: true, reason: step.reason };
    }
    return { events, resync: false };
  }

  /** The publisher says where it is; if we are behind or on another epoch, we lost something. */
  onHeartbeat(epoch: number, seq: number): Step {
    if (this.status === 'syncing') return NOTHING;
    if (this.status === 'waiting') return { events: [], resync: true, reason: 'publisher announced' };
    if (epoch !== this.epoch) {
      this.stats.epochChanges++;
      return this.lost('publisher restarted (new epoch)');
    }
    if (seq > this.seq) {
      this.stats.gaps++;
      return this.lost(`behind: at seq ${this.seq}, publisher at ${seq}`);
    }
    return NOTHING;
  }

  private lost(reason: string): Step {
    this.status = 'waiting';
    return { events: [], resync: true, reason };
  }

  private apply(u: MirrorUpdate): MirrorEvent[] {
    this.seq = u.seq;
    this.stats.applied++;
    switch (u.op) {
      case 'set':
        return this.set(u.key, u.value, u.json, true);
      case 'del': {
        if (!this.entries.has(u.key)) return [];
        const old = this.entries.get(u.key);
        this.entries.delete(u.key);
        this.texts.delete(u.key);
        return [{ kind: 'delete', key: u.key, old }];
      }
      case 'restarted':
        return this.noteRestarted(u.epoch, u.counter);
      case 'invalid':
        return [];
    }
  }

  /** `live`: an update in sequence, which its publisher already found different from the last. */
  private set(key: string, value: unknown, json: string | undefined, live: boolean): MirrorEvent[] {
    const oldText = this.texts.get(key);
    if (json === undefined) this.texts.delete(key);
    else this.texts.set(key, json);
    if (!this.entries.has(key)) {
      this.entries.set(key, value);
      return [{ kind: 'create', key, value }];
    }
    const old = this.entries.get(key);
    if (!this.changed(old, oldText, value, json, live)) return [];
    this.entries.set(key, value);
    return [{ kind: 'modify', key, value, old }];
  }

  /**
   * Same text: same value. Other text on a live update: a change, since the publisher compared
   * the values before sending. Other text in a snapshot: compare, unless the length or the
   * character sum differs (a restarted publisher may rebuild a value with its keys reordered).
   */
  private changed(old: unknown, oldText: string | undefined, value: unknown, text: string | undefined, live: boolean): boolean {
    if (oldText !== undefined && text !== undefined) {
      if (oldText === text) return false;
      if (live || oldText.length !== text.length || charSum(oldText) !== charSum(text)) return true;
    }
    return !sameJson(old, value);
  }

  /** Fires once per (publisher instance, counter): a restarted publisher that signals again is seen, unlike EVE. */
  private noteRestarted(epoch: number, counter: number): MirrorEvent[] {
    const changed = counter !== this.restarted || (counter > 0 && epoch !== this.restartedEpoch);
    this.restarted = counter;
    if (!changed || counter === 0) return [];
    this.restartedEpoch = epoch;
    return [{ kind: 'restarted', counter }];
  }
}

