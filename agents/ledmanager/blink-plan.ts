// The blink pattern of a code, as EVE shows it: N blinks of 200 ms on and
// 200 ms off, then 1200 ms dark, over and over. Pure: one cycle as steps.
export const BLINK_ON_MS = 200;
export const BLINK_OFF_MS = 200;
export const PAUSE_MS = 1200;

export interface BlinkStep {
  brightness: 0 | 1;
  ms: number;
}

/** One cycle of the code's pattern; code 0 is all dark. */
export function blinkCycle(counter: number): BlinkStep[] {
  const steps: BlinkStep[] = [];
  for (let i = 0; i < counter; i++) steps.push({ brightness: 1, ms: BLINK_ON_MS }, { brightness: 0, ms: BLINK_OFF_MS });
  steps.push({ brightness: 0, ms: PAUSE_MS });
  return steps;
}
