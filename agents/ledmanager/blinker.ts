// Plays the current code's pattern on an LED, cycle after cycle; a new code takes
// over at the end of the cycle being shown, so a pattern is never cut in the
// middle (a person counting blinks would miscount). Time comes from the caller's
// timer, so tests can run it on a virtual clock.
import { blinkCycle, type BlinkStep } from './blink-plan';
import type { Led } from './led-driver';

export type Timer = (fn: () => void, ms: number) => unknown;

export class Blinker {
  private code = 0;
  private steps: BlinkStep[] = blinkCycle(0);
  private index = 0;
  private running = false;

  constructor(private readonly led: Led, private readonly timer: Timer) {}

  get current(): number {
    return this.code;
  }

  /** The code to show from the next cycle on. */
  show(code: number): void {
    this.code = code;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.steps = blinkCycle(this.code);
    this.index = 0;
    this.step();
  }

  stop(): void {
    this.running = false;
    this.led.set(0);
  }

  private step(): void {
    if (!this.running) return;
    if (this.index >= this.steps.length) {
      this.steps = blinkCycle(this.code);
      this.index = 0;
    }
    const s = this.steps[this.index++]!;
    this.led.set(s.brightness);
    this.timer(() => this.step(), s.ms);
  }
}
