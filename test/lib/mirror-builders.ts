// Builders shared by the Mirror tests.
import {
  MAX_BUFFERED_UPDATES,
  Mirror,
  type MirrorEvent,
  type MirrorSnapshot,
  type MirrorUpdate,
  type Step,
} from '../../pubsub/mirror';

export const E1 = 0x1111;
export const E2 = 0x2222;

export const set = (seq: number, key: string, value: unknown, epoch = E1): MirrorUpdate => ({ op: 'set', epoch, seq, key, value });
export const del = (seq: number, key: string, epoch = E1): MirrorUpdate => ({ op: 'del', epoch, seq, key });
export const rst = (seq: number, counter: number, epoch = E1): MirrorUpdate => ({ op: 'restarted', epoch, seq, counter });
export const bad = (seq: number, key: string, epoch = E1): MirrorUpdate => ({ op: 'invalid', epoch, seq, key });

export function snap(
  seq: number,
  entries: Record<string, unknown>,
  opts: { epoch?: number; restarted?: number; invalid?: string[] } = {},
): MirrorSnapshot {
  return {
    epoch: opts.epoch ?? E1,
    seq,
    restarted: opts.restarted ?? 0,
    entries: new Map(Object.entries(entries)),
    invalidKeys: opts.invalid ? new Set(opts.invalid) : undefined,
  };
}

/** A mirror that has received its first snapshot and is live. */
export function live(entries: Record<string, unknown> = {}, seq = 0, opts: { epoch?: number; restarted?: number } = {}): Mirror {
  const m = new Mirror();
  m.beginSync();
  const step = m.onSnapshot(snap(seq, entries, opts));
  if (step.resync || m.status !== 'live') throw new Error('fixture mirror did not go live');
  return m;
}

export const entriesOf = (m: Mirror): Record<string, unknown> => Object.fromEntries(m.entries);
export const kinds = (events: MirrorEvent[]): string[] => events.map((e) => ('key' in e ? `${e.kind}:${e.key}` : e.kind));
export const quiet = (s: Step): boolean => s.events.length === 0 && !s.resync;
