// The LED code zedagent drives (EVE's LedBlinkCounter): where the link to the
// controller stands. Published only when it changes; ledmanager shows it.
import { LedBlinkCounterCollection } from '../../pubsub/collections';
import type { AgentContext } from '../agent';

/** EVE's codes for onboarding refusals: 18 not known, 17 conflict, 10 any other. */
export function ledForRefusal(code: string | undefined): number {
  if (code === undefined) return 2; // not reached: still trying to connect
  if (code === 'not-registered' || code === 'pending') return 18;
  if (code === 'conflict') return 17;
  return 10;
}

export class LedState {
  private readonly pub;
  private counter = -1;

  constructor(ctx: AgentContext) {
    this.pub = ctx.publish(LedBlinkCounterCollection);
  }

  set(counter: number, reason: string): void {
    if (counter === this.counter) return;
    this.counter = counter;
    this.pub.publish('global', { counter, reason });
  }
}
