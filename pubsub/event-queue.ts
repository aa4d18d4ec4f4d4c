// The events waiting for a subscription's handlers, with at most one per key.
// Handlers run one at a time; while one is slow, later events for a key it has
// not yet been told about merge into the waiting one, so the queue is bounded by
// the number of keys, not the number of updates. As in EVE, a burst collapses:
// handlers see the latest state, not every transition.
import { jsonEqual } from './equal';
import { Fifo } from '../lib/fifo';
import type { MirrorEvent } from './mirror';

type KeyEvent = Extract<MirrorEvent, { key: string }>;
interface Slot {
  event: MirrorEvent | null;
}

export class EventQueue {
  private readonly slots = new Fifo<Slot>();
  private readonly waitingByKey = new Map<string, Slot>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(e: MirrorEvent): void {
    if (!('key' in e)) {
      this.append(e);
      return;
    }
    const slot = this.waitingByKey.get(e.key);
    if (!slot?.event) {
      this.waitingByKey.set(e.key, this.append(e));
      return;
    }
    const merged = merge(slot.event as KeyEvent, e);
    slot.event = merged;
    if (!merged) {
      this.waitingByKey.delete(e.key);
      this.count--;
    }
  }

  shift(): MirrorEvent | undefined {
    for (let slot = this.slots.shift(); slot; slot = this.slots.shift()) {
      const e = slot.event;
      if (!e) continue;
      slot.event = null;
      if ('key' in e && this.waitingByKey.get(e.key) === slot) this.waitingByKey.delete(e.key);
      this.count--;
      return e;
    }
    return undefined;
  }

  clear(): void {
    this.slots.clear();
    this.waitingByKey.clear();
    this.count = 0;
  }

  private append(e: MirrorEvent): Slot {
    const slot = { event: e };
    this.slots.push(slot);
    this.count++;
    return slot;
  }
}

/** One event with the effect of `first` then `next` on a handler that has seen neither. */
function merge(first: KeyEvent, next: KeyEvent): KeyEvent | null {
  const key = first.key;
  const before = first.kind === 'create' ? undefined : { value: first.old };
  const after = next.kind === 'delete' ? undefined : { value: next.value };
  if (!before) return after ? { kind: 'create', key, value: after.value } : null;
  if (!after) return { kind: 'delete', key, old: before.value };
  return jsonEqual(before.value, after.value) ? null : { kind: 'modify', key, value: after.value, old: before.value };
}
